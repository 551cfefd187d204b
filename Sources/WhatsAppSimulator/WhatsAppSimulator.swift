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
import WahostBasics
import WhatsAppServerSide

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
    /// Paired accounts by noise public key (hex); changed only through `addAccount` and `removeAccounts`.
    var accounts: [String: SimulatedAccount] = [:]
    /// The key in `accounts` of each user's latest pairing.
    var accountKeys: [String: String] = [:]
    var connections: [UInt64: LiveConnection] = [:]
    /// The logged-in connections of each user; phases change only through `setPhase`.
    var loggedInConnections: [String: Set<UInt64>] = [:]
    private var nextConnectionID: UInt64 = 0
    var nextPhoneNumber: UInt64 = 15_551_000_000
    var silentAccounts: Set<String> = []
    /// Each account's last prekey upload and the one-time prekeys not handed out yet.
    var uploadedKeys: [String: (upload: PreKeyUpload, unused: [(id: UInt32, publicKey: [UInt8])])] = [:]
    /// Faults armed by tests: held request kinds and what they hold, terminations waiting for a login.
    var faults = SimulatorFaults()
    /// Simulated WhatsApp users outside wahost, by number (made on first use).
    var peers: [String: SimulatedPeer] = [:]
    /// Messages to each account (by user) not acked by its device yet, oldest first.
    var offlineQueue: [String: [QueuedMessage]] = [:]
    /// The inbound load run of a benchmark, if one was started.
    var load: LoadRun?
    /// Counts load runs; a run's sending task stops once another run started.
    var loadGeneration = 0
    /// While set, messages from accounts are acked and their reading by the peers waits here (`deferPeerReading`).
    var deferredReadings: [DeferredReading]?
    /// Accounts whose message acks are ignored (see `setIgnoringAcks`).
    var ignoringAcks: Set<String> = []
    var companionFinishes: [UInt64: CompanionFinish] = [:]
    var companionFinishWaiters: [UInt64: CheckedContinuation<CompanionFinish, any Error>] = [:]

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
        let (task, bound) = try await retryingBusyPort(requestedPort) { try await listen(server: webSocketServer(), host: host, port: requestedPort) }
        appTask = task
        port = bound
        return "ws://\(host):\(bound)/ws/chat"
    }

    /// Also listens with TLS (`tls` is a server configuration: certificate chain and key) on `host:port`, serving
    /// the same WebSocket endpoint and control API; returns the `wss://localhost:…` URL (TLS needs a host name,
    /// so the certificate must name `localhost`). Call after `start`.
    public func startTLS(_ tls: TLSConfiguration, host: String = "127.0.0.1", port requestedPort: Int = 0) async throws -> String {
        if let tlsPort { return "wss://localhost:\(tlsPort)/ws/chat" }
        let (task, bound) = try await retryingBusyPort(requestedPort) {
            try await listen(server: try .tls(webSocketServer(), tlsConfiguration: tls), host: host, port: requestedPort)
        }
        tlsTask = task
        tlsPort = bound
        return "wss://localhost:\(bound)/ws/chat"
    }

    private func webSocketServer() -> HTTPServerBuilder {
        .http1WebSocketUpgrade(
            configuration: .init(ws: .init(maxFrameSize: FrameEncoder.frameLimit, autoPing: webSocketPing.map { .enabled(timePeriod: $0) } ?? .disabled))
        ) { request, channel, _ in
            guard request.path == "/ws/chat" else { return .dontUpgrade }
            if await self.takeConnectFault(.upgradeUnanswered) {
                await self.holdUpgradeUnanswered(on: channel)
                return .dontUpgrade
            }
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
        let task = Task { defer { portSink.finish() }; try await app.run() }
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

extension WhatsAppSimulator {
    // MARK: Connection driver

    nonisolated func serve(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) async {
        let (outgoing, outgoingSink) = AsyncStream.makeStream(of: OutgoingFrame.self, bufferingPolicy: .unbounded)
        let writerTask = Task { await OutgoingFrame.write(outgoing, to: outbound) }
        var frames = FrameReader(inbound: inbound, expectingHeader: FrameEncoder.connectionHeader)
        var connectionID: UInt64?
        if await takeConnectFault(.helloUnanswered) {
            await holdHelloUnanswered(&frames)
            outgoingSink.finish()
            writerTask.cancel()
            return
        }
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
                // A stalled connection reads nothing more: the client's close goes unanswered, as from a peer gone.
                if await isStalled(id) {
                    await waitOutStall(id)
                    break
                }
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

    func close(_ id: UInt64) {
        guard let connection = connections[id] else { return }
        setPhase(.closing, of: id)
        connections[id] = nil
        companionFinishWaiters.removeValue(forKey: id)?.resume(throwing: SimulatorError("connection closed"))
        companionFinishes[id] = nil
        for continuation in connection.pending.values { continuation.resume(throwing: SimulatorError("connection closed")) }
        guard case .loggedIn(let user) = connection.phase else { return }
        counters.liveConnections[user, default: 1] -= 1
        if connection.answerDelay != nil, !connection.endedOrFaultedByServer {
            counters.slowConnectionsClosedByClient[user, default: []].append(connection.longestAnswerDelay.timeInterval)
        }
    }

    /// Encrypts and queues a stanza to one connection.
    func send(_ node: Node, to id: UInt64) {
        guard var connection = connections[id], connection.stalledSince == nil else { return }
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
        connections[id]?.endedOrFaultedByServer = true
        connections[id]?.stalledSince = nil
        connections[id]?.outgoing.yield(.close)
    }

    private func begin(connection id: UInt64, payload: Wa_ClientPayload, clientStaticKey: [UInt8]) async {
        if payload.hasDevicePairingData {
            counters.registrations += 1
            let refs = (0..<6).map { _ in "2@" + Data(SimulatorRandom.bytes(18)).base64EncodedString() }
            setPhase(.registering(
                identityPublicKey: Array(payload.devicePairingData.eIdent), noisePublicKey: clientStaticKey, refs: refs), of: id)
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
        if faults.stalledLogins.remove(user) != nil {
            counters.unansweredLogins += 1
            connections[id]?.stalledSince = ContinuousClock.now
            return
        }
        // A stalled connection's client has given up on it: the server forgets it now. One its client just closed
        // may not have been noticed yet (its serve loop is behind by a scheduling delay): that gets 200 ms.
        for otherID in liveConnectionIDs(of: user) where otherID != id && connections[otherID]?.stalledSince != nil { close(otherID) }
        let grace = ContinuousClock.now + .milliseconds(200)
        while liveConnectionIDs(of: user).contains(where: { $0 != id }), ContinuousClock.now < grace {
            try? await Task.sleep(for: .milliseconds(5))
        }
        guard connections[id] != nil else { return }
        // A second login with the same credentials replaces the first (WhatsApp's behaviour): from then on only the
        // new connection is served. The peak counts the replaced one with it (an overlap, however short); the live
        // count drops it at once, even while its client (a paused process) has not closed its socket yet.
        var replaced = 0
        for (otherID, other) in connections where otherID != id {
            if case .loggedIn(let otherUser) = other.phase, otherUser == user {
                send(Node(tag: "stream:error", children: [Node(tag: "conflict", attributes: ["type": "replaced"])]), to: otherID)
                await drop(otherID)
                setPhase(.closing, of: otherID)
                replaced += 1
            }
        }
        setPhase(.loggedIn(user: user), of: id)
        counters.logins[user, default: 0] += 1
        counters.liveConnections[user, default: 0] += 1
        counters.peakConnectionsPerAccount[user] = max(counters.peakConnectionsPerAccount[user] ?? 0, counters.liveConnections[user] ?? 0)
        if replaced > 0 {
            counters.liveConnections[user, default: 0] -= replaced
            counters.replacedByLogin[user, default: 0] += replaced
        }
        send(
            Node(
                tag: "success",
                attributes: ["t": .string(String(Int(Date().timeIntervalSince1970))), "lid": .jid(account.lid), "location": "sim"]),
            to: id)
        deliverQueued(to: user, on: id)
        if let termination = faults.onLogin.removeValue(forKey: user) { await terminate(user, with: termination) }
    }

    // MARK: Stanzas from clients

    private func handle(_ node: Node, from id: UInt64) async {
        switch node.tag {
        case "ack": return accountAcked(node, from: id)
        case "receipt": return accountReceipt(node, from: id)
        case "message": return accountMessage(node, from: id)
        case "iq": break
        default: return
        }
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
        await answerUnlessFaulted(node, iqID: iqID, from: id)
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
                upload.identityPublicKey == account(ofUser: user)?.identityPublicKey
            else {
                counters.rejectedPreKeyUploads += 1
                send(errorResult(iqID, code: 400, text: "bad-request"), to: id)
                return
            }
            counters.preKeys[user, default: 0] += upload.preKeys.count
            uploadedKeys[user] = (upload, (uploadedKeys[user]?.unused ?? []) + upload.preKeys)
            send(result(iqID), to: id)
        case ("usync", .loggedIn?):
            send(deviceLists(iqID, for: node), to: id)
        case ("encrypt", .loggedIn?) where node.child("key") != nil:
            send(preKeyBundles(iqID, for: node.child("key")?.children("user") ?? []), to: id)
        case ("md", .loggedIn(let user)?) where node.child("remove-companion-device") != nil:
            counters.logouts[user, default: 0] += 1
            removeAccounts(ofUser: user)
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

    func result(_ iqID: String) -> Node {
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
