import HummingbirdWebSocket
import WABinary
import WhatsApp
import WhatsAppServerSide

/// What the simulator observed, for tests and benchmarks.
public struct SimulatorCounters: Sendable, Equatable, Codable {
    /// Connections currently open, per account user (`"15550000001"`), logged-in only.
    public var liveConnections: [String: Int] = [:]
    /// Device-list (usync) queries answered.
    public var deviceListQueries = 0
    /// Prekey bundles handed out.
    public var bundlesServed = 0
    /// The most connections one account ever had open at once.
    public var peakConnectionsPerAccount: [String: Int] = [:]
    /// Logged-in connections a later login of the same account replaced (`conflict replaced`), per account.
    public var replacedByLogin: [String: Int] = [:]
    /// Login handshakes (ClientPayload with a username) per account.
    public var logins: [String: Int] = [:]
    /// Per account, the longest answer delay (seconds) of each slowed connection that the client closed, no other
    /// fault having reached it.
    public var slowConnectionsClosedByClient: [String: [Double]] = [:]
    /// Registration handshakes (unpaired clients).
    public var registrations = 0
    /// Keepalive pings answered, per account.
    public var pings: [String: Int] = [:]
    /// Logout IQs received, per account.
    public var logouts: [String: Int] = [:]
    /// One-time prekeys the server holds, per account (uploads add, bundles and `consumePreKeys` take): what the count query answers.
    public var preKeys: [String: Int] = [:]
    /// Prekey uploads whose signed prekey did not verify or whose identity was not the account's.
    public var rejectedPreKeyUploads = 0
    /// Messages peers sent to accounts, and how many of them the accounts' devices acked.
    public var messagesSent = 0
    public var messagesAcked = 0
    /// Message acks from accounts, of queued messages or any other.
    public var messageAcksReceived = 0
    /// Receipts from accounts, by type (`delivery`, `retry`, `read`).
    public var receipts: [String: Int] = [:]
    /// Account messages the peers read, and those they could not decrypt.
    public var messagesReceivedByPeers = 0
    public var undecryptableByPeers = 0
    /// Requests received while their kind was held (see `hold(_:)`), by kind.
    public var heldRequests: [String: Int] = [:]
    /// Wire faults applied to live connections (`applyWireFault`).
    public var wireFaults = 0
    /// Logins left without an answer after the handshake (`stallNextLogin`).
    public var unansweredLogins = 0
    /// Connect faults waiting for the next connections, and those that took one, by kind (`armConnectFault`).
    public var connectFaultsArmed: [String: Int] = [:]
    public var connectFaultsMet: [String: Int] = [:]
    /// Sockets a connect fault holds now, and those the client closed (the rest hit the simulator's own limit).
    public var connectFaultsOpen = 0
    public var connectFaultsClosedByClient = 0
}

/// A simulator operation failed.
public struct SimulatorError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The simulator's Noise identity: a root that clients trust by configuration, and a certified leaf.
struct SimulatorServerKeys: Sendable {
    let rootPublicKey: [UInt8]
    let leaf: Curve25519KeyPair
    let certificateChain: [UInt8]

    static func generate() throws -> SimulatorServerKeys {
        let builder = CertificateChainBuilder()
        let leaf = Curve25519KeyPair.generate()
        return SimulatorServerKeys(rootPublicKey: builder.root.publicKey, leaf: leaf, certificateChain: try builder.build(leafKey: leaf.publicKey))
    }
}

/// A paired companion device as the server knows it.
struct SimulatedAccount: Sendable {
    var jid: JID
    var lid: JID
    var noisePublicKey: [UInt8]
    var identityPublicKey: [UInt8]
}

/// Where a connection is in its life.
enum ConnectionPhase: Sendable {
    case registering(identityPublicKey: [UInt8], noisePublicKey: [UInt8], refs: [String])
    case loggedIn(user: String)
    case closing
}

/// One connection's server-side state, owned by the simulator actor.
struct LiveConnection: Sendable {
    var outbound: WebSocketOutboundWriter
    var outgoing: AsyncStream<OutgoingFrame>.Continuation
    var writer: NoiseTransport
    var phase: ConnectionPhase
    var pending: [String: CheckedContinuation<Node, any Error>] = [:]
    var linkCode: PendingLinkCode?
    /// Set by a mid-frame stall: nothing more is sent or read (`applyWireFault`).
    var stalledSince: ContinuousClock.Instant?
    /// Answers to the client's requests wait this long.
    var answerDelay: Duration?
    /// The longest `answerDelay` it ever had.
    var longestAnswerDelay: Duration = .zero
    /// Requests go unanswered.
    var muted = false
    /// A fault other than slowed answers reached it, or the server closed it (`drop`).
    var endedOrFaultedByServer = false
}

/// A code pairing the companion started and the phone has not entered yet.
struct PendingLinkCode: Sendable {
    var hello: CompanionHello
    var ref: [UInt8]
    var primary: LinkCodePrimary?
    var identityPublicKey: [UInt8]
}

/// Random bytes for refs and ids.
enum SimulatorRandom {
    static func bytes(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
    }
}
