import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOSSL
import NIOWebSocket
import SwiftProtobuf
import WABinary
import WAProto
import WhatsApp
import WhatsAppServerSide

/// What the simulator observed, for tests and benchmarks.
public struct SimulatorCounters: Sendable, Equatable, Codable {
    /// Connections currently open, per account user (`"15550000001"`), logged-in only.
    public var liveConnections: [String: Int] = [:]
    /// The most connections one account ever had open at once.
    public var peakConnectionsPerAccount: [String: Int] = [:]
    /// Login handshakes (ClientPayload with a username) per account.
    public var logins: [String: Int] = [:]
    /// Registration handshakes (unpaired clients).
    public var registrations = 0
    /// Keepalive pings answered, per account.
    public var pings: [String: Int] = [:]
    /// Logout IQs received, per account.
    public var logouts: [String: Int] = [:]
    /// One-time prekeys the server holds, per account (uploads add, `consumePreKeys` takes).
    public var preKeys: [String: Int] = [:]
    /// Prekey uploads whose signed prekey did not verify or whose identity was not the account's.
    public var rejectedPreKeyUploads = 0
    /// Requests received while their kind was held (see `hold(_:)`), by kind.
    public var heldRequests: [String: Int] = [:]
}

/// The server side of WhatsApp's companion protocol over real loopback WebSockets, with a scriptable phone.
public actor WhatsAppSimulator {
    /// The groups every simulated account is in, as a client lists them (full `…@g.us` ids); the simulator sends
    /// the bare ids, as WhatsApp does.
    public static let groupFixture: [WhatsAppGroup] = [
        WhatsAppGroup(
            id: "120363025246125486@g.us", subject: "Family",
            participants: ["15550000001@s.whatsapp.net", "15550000002@s.whatsapp.net", "15550000003@s.whatsapp.net"]),
        WhatsAppGroup(
            id: "120363025246125487@g.us", subject: "Book club", participants: ["15550000001@s.whatsapp.net", "15550000004@s.whatsapp.net"]),
    ]

    private let logger: Logger
    private let serverKeys: SimulatorServerKeys
    private var appTask: Task<Void, any Error>?
    private var port: Int?
    private var tlsTask: Task<Void, any Error>?
    private var tlsPort: Int?
    private var webSocketPing: Duration?
    var counters = SimulatorCounters()
    var accounts: [String: SimulatedAccount] = [:]  // by noise public key (hex)
    var connections: [UInt64: LiveConnection] = [:]
    private var nextConnectionID: UInt64 = 0
    private var nextPhoneNumber: UInt64 = 15_551_000_000
    var silentAccounts: Set<String> = []
    /// Faults armed by tests: held request kinds and what they hold, terminations waiting for a login.
    var faults = SimulatorFaults()
    private var companionFinishes: [UInt64: CompanionFinish] = [:]
    private var companionFinishWaiters: [UInt64: CheckedContinuation<CompanionFinish, any Error>] = [:]

    /// The root public key clients must be configured with to trust this simulator.
    public nonisolated var rootPublicKey: [UInt8] { serverKeys.rootPublicKey }

    public init(logger: Logger = Logger(label: "wahost.simulator")) throws {
        self.logger = logger
        self.serverKeys = try SimulatorServerKeys.generate()
    }

    /// Starts listening on `host:port` (0 = any free port); returns the `ws://` URL clients connect to. The same
    /// port serves the control API under `/control/` (see `SimulatorControl`). With `webSocketPing`, every
    /// connection also gets a WebSocket-level ping that often (WhatsApp's own liveness check is the client's IQ
    /// ping, docs/protocol-notes.md#keepalive; whether its servers also send WebSocket pings is not documented, so the default is none).
    public func start(host: String = "127.0.0.1", port requestedPort: Int = 0, webSocketPing: Duration? = nil) async throws -> String {
        if let port { return "ws://\(host):\(port)/ws/chat" }
        self.webSocketPing = webSocketPing
        let (task, bound) = try await listen(server: webSocketServer(), host: host, port: requestedPort)
        appTask = task
        port = bound
        return "ws://\(host):\(bound)/ws/chat"
    }

    /// Also listens with TLS (`tls` is a server configuration: certificate chain and key) on `host:port`, serving
    /// the same WebSocket endpoint and control API; returns the `wss://localhost:…` URL (TLS needs a host name,
    /// so the certificate must name `localhost`). Call after `start`.
    public func startTLS(_ tls: TLSConfiguration, host: String = "127.0.0.1", port requestedPort: Int = 0) async throws -> String {
        if let tlsPort { return "wss://localhost:\(tlsPort)/ws/chat" }
        let (task, bound) = try await listen(server: try .tls(webSocketServer(), tlsConfiguration: tls), host: host, port: requestedPort)
        tlsTask = task
        tlsPort = bound
        return "wss://localhost:\(bound)/ws/chat"
    }

    /// Server TLS from a PEM certificate chain file and its PEM key file, for `startTLS`.
    public static func serverTLS(certificateFile: String, keyFile: String) throws -> TLSConfiguration {
        let chain: [NIOSSLCertificate]
        let key: NIOSSLPrivateKey
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certificateFile)
            key = try NIOSSLPrivateKey(file: keyFile, format: .pem)
        } catch {
            throw SimulatorError("cannot load the TLS certificate \(certificateFile) or key \(keyFile): \(error)")
        }
        guard !chain.isEmpty else { throw SimulatorError("no PEM certificate in \(certificateFile)") }
        return TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
    }

    private func webSocketServer() -> HTTPServerBuilder {
        .http1WebSocketUpgrade(
            configuration: .init(ws: .init(maxFrameSize: 1 << 24, autoPing: webSocketPing.map { .enabled(timePeriod: $0) } ?? .disabled))
        ) { request, _, _ in
            guard request.path == "/ws/chat" else { return .dontUpgrade }
            return .upgrade([:]) { inbound, outbound, _ in
                await self.serve(inbound: inbound, outbound: outbound)
            }
        }
    }

    /// Runs an application with the control router and `server` on `host:port`; returns its task and bound port.
    private func listen(server: HTTPServerBuilder, host: String, port requestedPort: Int) async throws -> (Task<Void, any Error>, Int) {
        let (portStream, portSink) = AsyncStream.makeStream(of: Int.self)
        let app = Application(
            router: SimulatorControl.router(for: self),
            server: server,
            configuration: .init(address: .hostname(host, port: requestedPort), serverName: "wahost-simulator"),
            onServerRunning: { channel in
                portSink.yield(channel.localAddress?.port ?? 0)
                portSink.finish()
            },
            logger: logger
        )
        let task = Task { try await app.run() }
        var iterator = portStream.makeAsyncIterator()
        guard let bound = await iterator.next(), bound > 0 else {
            task.cancel()
            throw SimulatorError("simulator failed to listen on \(host):\(requestedPort)")
        }
        return (task, bound)
    }

    /// Stops listening and drops every connection.
    public func stop() async {
        for task in [appTask, tlsTask].compactMap({ $0 }) {
            task.cancel()
            _ = await task.result
        }
        (appTask, tlsTask, port, tlsPort) = (nil, nil, nil, nil)
    }

    /// A snapshot of what the simulator observed.
    public var observed: SimulatorCounters { counters }
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
}

/// A code pairing the companion started and the phone has not entered yet.
struct PendingLinkCode: Sendable {
    var hello: CompanionHello
    var ref: [UInt8]
    var primary: LinkCodePrimary?
    var identityPublicKey: [UInt8]
}

extension WhatsAppSimulator {
    // MARK: Connection driver

    nonisolated func serve(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) async {
        let (outgoing, outgoingSink) = AsyncStream.makeStream(of: OutgoingFrame.self, bufferingPolicy: .unbounded)
        let writerTask = Task { await OutgoingFrame.write(outgoing, to: outbound) }
        var frames = FrameReader(inbound: inbound, expectingHeader: FrameEncoder.connectionHeader)
        var connectionID: UInt64?
        do {
            var responder = NoiseResponder(staticKeyPair: serverKeys.leaf, certificateChain: serverKeys.certificateChain)
            guard let hello = try await frames.next() else { throw SimulatorError("closed before ClientHello") }
            outgoingSink.yield(.frame(try FrameEncoder.frame(try responder.receiveClientHello(hello))))
            guard let finish = try await frames.next() else { throw SimulatorError("closed before ClientFinish") }
            let completion = try responder.receiveClientFinish(finish)
            let payload = try Wa_ClientPayload(serializedBytes: completion.clientPayload)
            let id = await open(outbound: outbound, outgoing: outgoingSink, writer: completion.transport)
            connectionID = id
            await begin(connection: id, payload: payload, clientStaticKey: completion.clientStaticKey)
            var reader = completion.transport
            while let frame = try await frames.next() {
                let node = try FramePlaintext.unpack(try reader.decrypt(frame))
                await handle(node, from: id)
            }
        } catch {
            logger.debug("simulator connection ended", metadata: ["error": "\(error)"])
        }
        if let connectionID { await close(connectionID) }
        outgoingSink.finish()
        writerTask.cancel()
        try? await outbound.close(.normalClosure, reason: nil)
    }

    private func open(outbound: WebSocketOutboundWriter, outgoing: AsyncStream<OutgoingFrame>.Continuation, writer: NoiseTransport) -> UInt64 {
        nextConnectionID += 1
        connections[nextConnectionID] = LiveConnection(
            outbound: outbound, outgoing: outgoing, writer: writer, phase: .closing)
        return nextConnectionID
    }

    private func close(_ id: UInt64) {
        guard let connection = connections.removeValue(forKey: id) else { return }
        companionFinishWaiters.removeValue(forKey: id)?.resume(throwing: SimulatorError("connection closed"))
        companionFinishes[id] = nil
        for continuation in connection.pending.values { continuation.resume(throwing: SimulatorError("connection closed")) }
        if case .loggedIn(let user) = connection.phase { counters.liveConnections[user, default: 1] -= 1 }
    }

    /// Encrypts and queues a stanza to one connection.
    func send(_ node: Node, to id: UInt64) {
        guard var connection = connections[id] else { return }
        do {
            let ciphertext = try connection.writer.encrypt(try FramePlaintext.pack(node))
            connection.outgoing.yield(.frame(try FrameEncoder.frame(ciphertext)))
            connections[id] = connection
        } catch {
            logger.error("simulator cannot send", metadata: ["error": "\(error)"])
        }
    }

    /// Closes a connection from the server side, after every stanza already queued to it.
    func drop(_ id: UInt64) async {
        connections[id]?.outgoing.yield(.close)
    }


    private func begin(connection id: UInt64, payload: Wa_ClientPayload, clientStaticKey: [UInt8]) async {
        if payload.hasDevicePairingData {
            counters.registrations += 1
            let refs = (0..<6).map { _ in "2@" + Data(SimulatorRandom.bytes(18)).base64EncodedString() }
            connections[id]?.phase = .registering(
                identityPublicKey: Array(payload.devicePairingData.eIdent), noisePublicKey: clientStaticKey, refs: refs)
            send(PairDeviceRequest(iqID: nextIQID(), refs: refs).node, to: id)
            return
        }
        let key = clientStaticKey.map { String(format: "%02x", $0) }.joined()
        guard let account = accounts[key], UInt64(account.jid.user) == payload.username, UInt32(account.jid.device) == payload.device
        else {
            send(Node(tag: "failure", attributes: ["reason": "401"]), to: id)
            await drop(id)
            return
        }
        let user = account.jid.user
        // A second login with the same credentials replaces the first (WhatsApp's behaviour).
        for (otherID, other) in connections where otherID != id {
            if case .loggedIn(let otherUser) = other.phase, otherUser == user {
                send(Node(tag: "stream:error", children: [Node(tag: "conflict", attributes: ["type": "replaced"])]), to: otherID)
                await drop(otherID)
            }
        }
        connections[id]?.phase = .loggedIn(user: user)
        counters.logins[user, default: 0] += 1
        counters.liveConnections[user, default: 0] += 1
        counters.peakConnectionsPerAccount[user] = max(counters.peakConnectionsPerAccount[user] ?? 0, counters.liveConnections[user] ?? 0)
        send(
            Node(
                tag: "success",
                attributes: ["t": .string(String(Int(Date().timeIntervalSince1970))), "lid": .jid(account.lid), "location": "sim"]),
            to: id)
        if let termination = faults.onLogin.removeValue(forKey: user) { await terminate(user, with: termination) }
    }

    // MARK: Stanzas from clients

    private func handle(_ node: Node, from id: UInt64) async {
        guard node.tag == "iq" else { return }
        let type = node.attributes["type"]?.string
        if type == "result" || type == "error", let iqID = node.attributes["id"]?.string,
            let continuation = connections[id]?.pending.removeValue(forKey: iqID)
        {
            continuation.resume(returning: node)
            return
        }
        guard let iqID = node.attributes["id"]?.string else { return }
        if let kind = SimulatedRequest(node), faults.held.contains(kind) {
            faults.heldNodes.append((kind, id, node))
            counters.heldRequests[kind.rawValue, default: 0] += 1
            return
        }
        await answer(node, iqID: iqID, from: id)
    }

    /// Answers one request as WhatsApp would.
    func answer(_ node: Node, iqID: String, from id: UInt64) async {
        let xmlns = node.attributes["xmlns"]?.string
        switch (xmlns, connections[id]?.phase) {
        case ("w:p", .loggedIn(let user)?):
            guard !silentAccounts.contains(user) else { return }
            counters.pings[user, default: 0] += 1
            send(result(iqID), to: id)
        case ("passive", .loggedIn?):
            send(result(iqID), to: id)
        case ("w:g2", .loggedIn?):
            send(groupsResult(iqID), to: id)
        case ("encrypt", .loggedIn(let user)?) where node.child("count") != nil:
            send(
                Node(
                    tag: "iq", attributes: ["from": .jid(.whatsappServer), "id": .string(iqID), "type": "result"],
                    children: [Node(tag: "count", attributes: ["value": .string(String(counters.preKeys[user] ?? 0))])]),
                to: id)
        case ("encrypt", .loggedIn(let user)?) where node.child("list") != nil:
            guard let upload = try? PreKeyUpload(parsing: node),
                upload.identityPublicKey == accounts.values.first(where: { $0.jid.user == user })?.identityPublicKey
            else {
                counters.rejectedPreKeyUploads += 1
                send(errorResult(iqID, code: 400, text: "bad-request"), to: id)
                return
            }
            counters.preKeys[user, default: 0] += upload.preKeys.count
            send(result(iqID), to: id)
        case ("md", .loggedIn(let user)?) where node.child("remove-companion-device") != nil:
            counters.logouts[user, default: 0] += 1
            accounts = accounts.filter { $0.value.jid.user != user }
            send(result(iqID), to: id)
            await drop(id)
        case ("md", .registering?) where node.child("link_code_companion_reg") != nil:
            await handleLinkCodeStage(node, iqID: iqID, from: id)
        default:
            send(
                Node(
                    tag: "iq", attributes: ["id": .string(iqID), "type": "error", "from": .jid(.whatsappServer)],
                    children: [Node(tag: "error", attributes: ["code": "501", "text": "feature-not-implemented"])]),
                to: id)
        }
    }

    private func result(_ iqID: String) -> Node {
        Node(tag: "iq", attributes: ["from": .jid(.whatsappServer), "id": .string(iqID), "type": "result"])
    }

    private func groupsResult(_ iqID: String) -> Node {
        let groups = Self.groupFixture.map { group in
            Node(
                tag: "group", attributes: ["id": .string(group.id.replacing("@g.us", with: "")), "subject": .string(group.subject), "s_t": "1700000000"],
                children: group.participants.compactMap { try? JID(parsing: $0) }.map { Node(tag: "participant", attributes: ["jid": .jid($0)]) })
        }
        return Node(
            tag: "iq", attributes: ["from": .jid(.groupServer), "id": .string(iqID), "type": "result"],
            children: [Node(tag: "groups", children: groups)])
    }

    func nextIQID() -> String {
        return "sim-" + SimulatorRandom.bytes(6).map { String(format: "%02x", $0) }.joined()
    }

    /// Sends an IQ to a connection and waits for its answer.
    func request(_ node: Node, iqID: String, to id: UInt64) async throws -> Node {
        guard connections[id] != nil else { throw SimulatorError("no such connection") }
        send(node, to: id)
        return try await withCheckedThrowingContinuation { continuation in
            connections[id]?.pending[iqID] = continuation
        }
    }
}

/// Random bytes for refs and ids.
enum SimulatorRandom {
    static func bytes(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
    }
}

// MARK: - The scriptable phone

extension WhatsAppSimulator {
    /// The phone scans a QR string shown by a companion: links it to a new account and completes pair-success → 515.
    /// Returns the companion's new JID (`<number>:<device>@s.whatsapp.net`).
    @discardableResult
    public func scanQRCode(_ text: String) async throws -> String {
        let code = try PairingQRCode(parsing: text)
        guard
            let (id, identityKey) = connections.lazy.compactMap({ id, connection -> (UInt64, [UInt8])? in
                guard case .registering(let identity, let noise, let refs) = connection.phase, refs.contains(code.ref),
                    noise == code.noisePublicKey, identity == code.identityPublicKey
                else { return nil }
                return (id, identity)
            }).first
        else { throw SimulatorError("no connected companion shows this QR code") }
        return try await completePairing(connection: id, identityPublicKey: identityKey, advSecretKey: code.advSecretKey, noisePublicKey: code.noisePublicKey)
    }

    /// The phone enters a link code a companion showed: runs docs/protocol-notes.md#link-code from the phone's side, then pair-success → 515.
    @discardableResult
    public func enterLinkCode(_ code: String) async throws -> String {
        let phone = Curve25519KeyPair.generate()
        for (id, connection) in connections {
            guard var pending = connection.linkCode, case .registering(let identity, let noise, _) = connection.phase else { continue }
            guard let primary = try? LinkCodePrimary(typedCode: code, hello: pending.hello, ref: pending.ref, identityKey: phone) else {
                continue
            }
            pending.primary = primary
            pending.identityPublicKey = identity
            connections[id]?.linkCode = pending
            send(primary.primaryHello.node, to: id)
            let finish = try await waitForCompanionFinish(connection: id)
            let result = try primary.receiveCompanionFinish(finish)
            return try await completePairing(
                connection: id, identityPublicKey: result.companionIdentityPublicKey, advSecretKey: result.advSecretKey, noisePublicKey: noise)
        }
        throw SimulatorError("no companion is waiting for a link code")
    }

    /// The paired account users (phone numbers) the simulator knows.
    public var accountUsers: [String] { accounts.values.map(\.jid.user).sorted() }

    func liveConnectionIDs(of user: String) -> [UInt64] {
        connections.compactMap { id, connection in
            if case .loggedIn(let other) = connection.phase, other == user { return id }
            return nil
        }
    }

    private func completePairing(connection id: UInt64, identityPublicKey: [UInt8], advSecretKey: [UInt8], noisePublicKey: [UInt8])
        async throws -> String
    {
        nextPhoneNumber += 1
        let user = String(nextPhoneNumber)
        let jid = JID.phoneNumber(user, device: 1)
        let lid = JID.lid(String(nextPhoneNumber + 200_000_000_000), device: 1)
        let issuer = PairSuccessIssuer(accountSigningKey: Curve25519KeyPair.generate())
        let iqID = nextIQID()
        let pairSuccess = try issuer.pairSuccess(
            iqID: iqID, companionIdentityPublicKey: identityPublicKey, advSecretKey: advSecretKey, jid: jid, lid: lid, keyIndex: 1,
            timestamp: UInt64(Date().timeIntervalSince1970))
        let reply = try await request(pairSuccess.node, iqID: iqID, to: id)
        _ = try issuer.verifyReply(reply, to: pairSuccess, companionIdentityPublicKey: identityPublicKey)
        let key = noisePublicKey.map { String(format: "%02x", $0) }.joined()
        accounts[key] = SimulatedAccount(jid: jid, lid: lid, noisePublicKey: noisePublicKey, identityPublicKey: identityPublicKey)
        // The server restarts the stream after pairing; the companion logs in again.
        send(Node(tag: "stream:error", attributes: ["code": "515"]), to: id)
        await drop(id)
        return jid.description
    }

    func handleLinkCodeStage(_ node: Node, iqID: String, from id: UInt64) async {
        guard let stage = node.child("link_code_companion_reg")?.attributes["stage"]?.string else { return }
        switch stage {
        case "companion_hello":
            do {
                let hello = try CompanionHello(parsing: node)
                let ref = Array("sim-ref-\(iqID)".utf8)
                connections[id]?.linkCode = PendingLinkCode(hello: hello, ref: ref, primary: nil, identityPublicKey: [])
                send(hello.responseNode(ref: ref), to: id)
            } catch {
                send(errorResult(iqID, code: 400, text: "bad-request"), to: id)
            }
        case "companion_finish":
            send(result(iqID), to: id)
            if let finish = try? CompanionFinish(parsing: node) { companionFinishes[id] = finish }
            if let waiter = companionFinishWaiters.removeValue(forKey: id), let finish = companionFinishes.removeValue(forKey: id) {
                waiter.resume(returning: finish)
            }
        default:
            send(errorResult(iqID, code: 400, text: "bad-request"), to: id)
        }
    }

    private func errorResult(_ iqID: String, code: Int, text: String) -> Node {
        Node(
            tag: "iq", attributes: ["from": .jid(.whatsappServer), "id": .string(iqID), "type": "error"],
            children: [Node(tag: "error", attributes: ["code": .string(String(code)), "text": .string(text)])])
    }

    private func waitForCompanionFinish(connection id: UInt64) async throws -> CompanionFinish {
        if let finish = companionFinishes.removeValue(forKey: id) { return finish }
        return try await withCheckedThrowingContinuation { continuation in
            companionFinishWaiters[id] = continuation
        }
    }
}
