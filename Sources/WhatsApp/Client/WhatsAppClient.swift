import Foundation
import HTTPTypes
import Logging
import NIOCore
import NIOWebSocket
import SwiftProtobuf
import WABinary
import WAProto
import WSClient

/// What a client reports while it runs.
public enum WhatsAppEvent: Sendable, Equatable {
    /// A QR string to show for `expiresIn`; replaces the previous one.
    case qrCode(String, expiresIn: Duration)
    /// Pairing succeeded for this account JID; a restart (515) and login follow.
    case paired(jid: String)
    /// Logged in with stored credentials; the session is usable.
    case loggedIn(jid: String)
    /// The connection ended; `reason.disposition` says what to do.
    case disconnected(DisconnectReason)
}

/// A request the client made failed.
public struct WhatsAppClientError: Error, Sendable, Equatable, CustomStringConvertible {
    private enum Code: Equatable {
        case notConnected
        case notLoggedIn
        case timedOut
        case disconnected
        case serverError(Int, String)
        case malformedResponse(String)
        case alreadyPaired
        case pairing(String)
        case invalidPhoneNumber(String)
    }

    private let code: Code

    static let notConnected = WhatsAppClientError(code: .notConnected)
    static let notLoggedIn = WhatsAppClientError(code: .notLoggedIn)
    static let timedOut = WhatsAppClientError(code: .timedOut)
    static let disconnected = WhatsAppClientError(code: .disconnected)
    static let alreadyPaired = WhatsAppClientError(code: .alreadyPaired)
    static func serverError(_ code: Int, _ text: String) -> WhatsAppClientError { WhatsAppClientError(code: .serverError(code, text)) }
    static func malformedResponse(_ what: String) -> WhatsAppClientError { WhatsAppClientError(code: .malformedResponse(what)) }
    static func pairing(_ what: String) -> WhatsAppClientError { WhatsAppClientError(code: .pairing(what)) }
    static func invalidPhoneNumber(_ what: String) -> WhatsAppClientError { WhatsAppClientError(code: .invalidPhoneNumber(what)) }

    /// True when the request failed because the session is not connected or not logged in.
    public var isNotConnected: Bool { code == .notConnected || code == .notLoggedIn || code == .disconnected }

    /// True when a pairing-code request was refused because the phone number is not usable.
    public var isInvalidPhoneNumber: Bool { if case .invalidPhoneNumber = code { true } else { false } }

    public var description: String {
        switch code {
        case .notConnected: "not connected"
        case .notLoggedIn: "not logged in"
        case .timedOut: "request timed out"
        case .disconnected: "connection ended before the answer arrived"
        case .serverError(let code, let text): "server answered error \(code) \(text)"
        case .malformedResponse(let what): "malformed response: \(what)"
        case .alreadyPaired: "already paired"
        case .pairing(let what): "pairing failed: \(what)"
        case .invalidPhoneNumber(let what): "invalid phone number: \(what)"
        }
    }
}

/// One WhatsApp companion session: connects, pairs or logs in, keeps the connection alive, answers requests.
///
/// `run()` drives one connection and returns why it ended; the caller decides whether to call it again
/// (see `DisconnectReason.disposition`). The client holds no threads of its own: the connection lives in
/// the WebSocket handler task, keepalive and request timeouts are child tasks of it.
public actor WhatsAppClient {
    /// Events, newest kept when the consumer is slow (bounded).
    public nonisolated let events: AsyncStream<WhatsAppEvent>
    private let eventSink: AsyncStream<WhatsAppEvent>.Continuation
    private let configuration: WhatsAppClientConfiguration
    let store: any CredentialStore
    let logger: Logger
    var credentials: DeviceCredentials?
    /// Moves on at each credential wipe; a write that started before one must not outlive it.
    private var credentialEpoch = Epoch()
    /// Numbers the prekey tasks, so one that ends drops only its own handle.
    private var preKeyTasksStarted: UInt64 = 0
    var connection: Connection?
    private var stopRequested = false
    /// Moves on at each connection; timers, requests and the prekey task of an older connection are dropped.
    private var connectionEpoch = Epoch()
    private var loggingOut = false

    /// State of the live connection.
    struct Connection {
        /// Which connection of this client it is; timers that fire late check it.
        var number: UInt64
        var outbound: WebSocketOutboundWriter
        var outgoing: AsyncStream<OutgoingFrame>.Continuation
        var writer: NoiseTransport
        var iqIDs = IQIDGenerator()
        var pending: [String: PendingRequest] = [:]
        var endReason: DisconnectReason?
        var loggedIn = false
        var pairing: PairingSession?
        var keepalive: Scheduled<Void>?
        /// The prekey check or upload in flight (one at a time); dropped when it ends, and its task's memory with it.
        var preKeyCheck: (number: UInt64, task: Task<Void, Never>)?
    }

    /// A request waiting for its answer, and the timer that fails it when the answer is late.
    struct PendingRequest {
        var continuation: CheckedContinuation<Node, any Error>
        var deadline: Scheduled<Void>

        func resume(with result: Result<Node, any Error>) {
            deadline.cancel()
            continuation.resume(with: result)
        }
    }

    public init(configuration: WhatsAppClientConfiguration, store: any CredentialStore, logger: Logger) {
        self.configuration = configuration
        self.store = store
        self.logger = logger
        (events, eventSink) = AsyncStream.makeStream(of: WhatsAppEvent.self, bufferingPolicy: .bufferingNewest(64))
    }

    /// True while logged in.
    public var isLoggedIn: Bool { connection?.loggedIn ?? false }

    /// The account JID once paired.
    public var accountJID: JID? { credentials?.pairedAccount?.jid }

    /// Connects once and runs until the connection ends; returns why. Never throws: failures are reasons.
    public func run() async -> DisconnectReason {
        stopRequested = false
        let loaded: DeviceCredentials
        do {
            if let existing = try await store.load() {
                loaded = existing
            } else {
                loaded = try DeviceCredentials.generate()
                try await store.save(loaded)
            }
        } catch {
            logger.error("cannot load or create credentials", metadata: ["error": "\(error)"])
            return await finish(.networkError("credential store: \(error)"))
        }
        credentials = loaded
        var headers = HTTPFields()
        headers[.origin] = configuration.origin
        let socketConfiguration = WebSocketClientConfiguration(
            maxFrameSize: 1 << 24, additionalHeaders: headers, closeTimeout: .seconds(2))
        let result = ResultBox()
        do {
            try await WebSocketClient.connect(
                url: configuration.url, configuration: socketConfiguration, tlsConfiguration: configuration.tlsConfiguration, logger: logger
            ) {
                inbound, outbound, _ in
                let reason = await self.drive(inbound: inbound, outbound: outbound, credentials: loaded)
                result.set(reason)
            }
        } catch {
            if let reason = result.value { return await finish(reason) }
            return await finish(.networkError("\(error)"))
        }
        return await finish(result.value ?? .connectionClosed)
    }

    /// Ends the current connection, if any, without logging out.
    public func disconnect() async {
        stopRequested = true
        await end(.requested)
    }

    /// Lists the groups the account participates in.
    public func groups() async throws -> [WhatsAppGroup] {
        let response = try await request { Stanzas.participatingGroups(id: $0) }
        do { return try Stanzas.parseGroups(response) } catch { throw WhatsAppClientError.malformedResponse(error.description) }
    }

    /// Unlinks this companion (waits for the server's answer), ends the connection and wipes the credentials.
    public func logout() async throws {
        guard let jid = credentials?.pairedAccount?.jid else { throw WhatsAppClientError.notLoggedIn }
        // The server may close the socket right after answering (§20.9): a close from here on is the logout's.
        loggingOut = true
        defer { loggingOut = false }
        _ = try await request { Stanzas.removeCompanionDevice(id: $0, ownJID: jid) }
        credentialEpoch.advance()
        credentials = nil
        try await store.wipe()
        await end(.loggedOut(code: nil))
    }

    /// Starts phone-number code pairing on an unpaired connection; returns the 8-character code to type on the phone.
    public func requestPairingCode(phoneNumber: String) async throws -> String {
        try await startLinkCode(phoneNumber: phoneNumber)
    }

    // MARK: Connection driver (runs in the WebSocket handler task)

    private nonisolated func drive(
        inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, credentials: DeviceCredentials
    ) async -> DisconnectReason {
        let (outgoing, outgoingSink) = AsyncStream.makeStream(of: OutgoingFrame.self, bufferingPolicy: .unbounded)
        let writer = Task { await OutgoingFrame.write(outgoing, to: outbound) }
        let reason = await readLoop(inbound: inbound, outbound: outbound, outgoing: outgoingSink, credentials: credentials)
        outgoingSink.finish()
        writer.cancel()
        try? await outbound.close(.normalClosure, reason: nil)
        return reason
    }

    private nonisolated func readLoop(
        inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, outgoing: AsyncStream<OutgoingFrame>.Continuation,
        credentials: DeviceCredentials
    ) async -> DisconnectReason {
        var frames = FrameReader(inbound: inbound)
        let configuration = self.configuration

        // Handshake: ClientHello with the WA header, ServerHello within the deadline, ClientFinish.
        var encoder = FrameEncoder(firstFramePrefix: FrameEncoder.connectionHeader)
        let watchdog = EventLoopTimer.after(configuration.handshakeTimeout) {
            Task { try? await outbound.close(.normalClosure, reason: "handshake timeout") }
        }
        let readTransport: NoiseTransport
        do {
            var handshake = try NoiseHandshake(
                configuration: .init(rootPublicKey: configuration.rootPublicKey), staticKeyPair: credentials.noiseKey)
            outgoing.yield(.frame(try encoder.encode(handshake.makeClientHello())))
            guard let serverHello = try await frames.next() else {
                watchdog.cancel()
                return .handshakeFailed("connection closed during the handshake")
            }
            watchdog.cancel()
            let payload = try payloadBytes(for: credentials)
            let finished = try handshake.receiveServerHello(serverHello, clientPayload: payload, now: Date())
            outgoing.yield(.frame(try encoder.encode(finished.clientFinish)))
            readTransport = finished.transport
            await attach(outbound: outbound, outgoing: outgoing, writer: finished.transport)
        } catch {
            watchdog.cancel()
            logger.warning("handshake failed", metadata: ["error": "\(error)"])
            return .handshakeFailed("\(error)")
        }

        // Transport: decrypt, unpack, dispatch each stanza in order.
        var reader = readTransport
        do {
            while let frame = try await frames.next() {
                let plaintext = try reader.decrypt(frame)
                let node = try FramePlaintext.unpack(plaintext)
                if let reason = await handle(node) { return reason }
            }
        } catch {
            return await endReason(or: .networkError("\(error)"))
        }
        return await endReason(or: .connectionClosed)
    }

    private nonisolated func payloadBytes(for credentials: DeviceCredentials) throws -> [UInt8] {
        let payload: Wa_ClientPayload
        if let account = credentials.pairedAccount, let user = UInt64(account.jid.user) {
            payload = ClientPayloads.login(user: user, device: UInt32(account.jid.device), version: configuration.version)
        } else {
            payload = ClientPayloads.registration(
                keys: RegistrationKeys(
                    registrationID: credentials.registrationID, identityPublicKey: credentials.identityKey.publicKey,
                    signedPreKeyID: credentials.signedPreKey.id, signedPreKeyPublicKey: credentials.signedPreKey.keyPair.publicKey,
                    signedPreKeySignature: credentials.signedPreKey.signature),
                version: configuration.version, deviceName: configuration.deviceName)
        }
        return try payload.serializedBytes()
    }

    // MARK: Actor-isolated connection state

    private func attach(outbound: WebSocketOutboundWriter, outgoing: AsyncStream<OutgoingFrame>.Continuation, writer: NoiseTransport) {
        connection = Connection(number: connectionEpoch.advance(), outbound: outbound, outgoing: outgoing, writer: writer)
    }

    private func endReason(or fallback: DisconnectReason) -> DisconnectReason {
        if let reason = connection?.endReason { return reason }
        if stopRequested { return .requested }
        if loggingOut { return .loggedOut(code: nil) }
        return fallback
    }

    /// Records why the connection ends and closes the socket; the read loop then returns that reason.
    func end(_ reason: DisconnectReason) async {
        guard var connection else { return }
        if connection.endReason == nil { connection.endReason = reason }
        self.connection = connection
        connection.outgoing.yield(.close)
    }

    /// Ends the connection for good: fails its requests, cancels its timers, and waits for its prekey task, so no
    /// work of this connection (a credential write, a request) outlives the reason returned to the caller.
    private func finish(_ reason: DisconnectReason) async -> DisconnectReason {
        let final = connection?.endReason ?? reason
        connectionEpoch.advance()
        let ending = connection
        connection = nil
        if let ending {
            for request in ending.pending.values { request.resume(with: .failure(WhatsAppClientError.disconnected)) }
            ending.outgoing.finish()
            ending.keepalive?.cancel()
            if case .qr(let rotation)? = ending.pairing { rotation.cancel() }
            if let preKeyTask = ending.preKeyCheck?.task {
                preKeyTask.cancel()
                await preKeyTask.value
            }
        }
        logger.info("disconnected", metadata: ["reason": "\(final)"])
        eventSink.yield(.disconnected(final))
        return final
    }

    /// Encrypts and queues one stanza; order of calls is order on the wire.
    func send(_ node: Node) throws {
        guard var connection else { throw WhatsAppClientError.notConnected }
        let plaintext = try FramePlaintext.pack(node)
        let ciphertext = try connection.writer.encrypt(plaintext)
        connection.outgoing.yield(.frame(try FrameEncoder.frame(ciphertext)))
        self.connection = connection
    }

    /// Sends an IQ built with a fresh id and waits for its answer (logged-in connections only). With `number`, only
    /// on that connection: work of an ended connection must not reach the next one.
    private func request(on number: UInt64? = nil, timeout: Duration? = nil, _ build: (String) -> Node) async throws -> Node {
        guard var connection, number == nil || connection.number == number else { throw WhatsAppClientError.notConnected }
        guard connection.loggedIn else { throw WhatsAppClientError.notLoggedIn }
        let id = connection.iqIDs.next()
        self.connection = connection
        return try await send(requestWithID: id, node: build(id), timeout: timeout)
    }

    func send(requestWithID id: String, node: Node, timeout: Duration? = nil) async throws -> Node {
        try send(node)
        guard let number = connection?.number else { throw WhatsAppClientError.notConnected }
        let deadline = timeout ?? configuration.requestTimeout
        let response: Node = try await withCheckedThrowingContinuation { continuation in
            let timer = EventLoopTimer.after(deadline) { [weak self] in
                Task { await self?.failPending(id, on: number, with: WhatsAppClientError.timedOut) }
            }
            connection?.pending[id] = PendingRequest(continuation: continuation, deadline: timer)
        }
        if let (code, text) = Stanzas.iqError(response) { throw WhatsAppClientError.serverError(code, text) }
        return response
    }

    private func failPending(_ id: String, on number: UInt64, with error: WhatsAppClientError) {
        guard connection?.number == number else { return }
        connection?.pending.removeValue(forKey: id)?.resume(with: .failure(error))
    }

    /// Handles one stanza; returns a reason when the connection must end.
    private func handle(_ node: Node) async -> DisconnectReason? {
        switch node.tag {
        case "iq":
            if let type = node.attributes["type"]?.string, type == "result" || type == "error",
                let id = node.attributes["id"]?.string, let request = connection?.pending.removeValue(forKey: id)
            {
                request.resume(with: .success(node))
                return nil
            }
            return await handleServerRequest(node)
        case "success":
            return handleSuccess(node)
        case "failure":
            let reason = DisconnectReason.fromFailure(node)
            if reason.disposition == .stopAndWipeCredentials { await wipeCredentials() }
            return reason
        case "stream:error":
            let reason = DisconnectReason.fromStreamError(node)
            if reason.disposition == .stopAndWipeCredentials { await wipeCredentials() }
            return reason
        case "xmlstreamend":
            return .connectionClosed
        case "message", "receipt", "notification", "call":
            if node.tag == "notification", node.attributes["type"]?.string == "encrypt",
                let count = try? Stanzas.parsePreKeyCount(node), count < PreKeyPolicy.minimumOnServer
            {
                startPreKeyTask { await $0.uploadPreKeys(count: PreKeyPolicy.refillBatch, on: $1) }
            }
            if node.tag == "notification", let reason = await handleNotification(node) { return reason }
            if let ack = Stanzas.ack(for: node) { try? send(ack) }
            return nil
        default:
            return nil
        }
    }

    private func handleSuccess(_ node: Node) -> DisconnectReason? {
        guard let account = credentials?.pairedAccount else {
            // §6.5 / §20.1: a registration connection may see <success> before pair-device; ignore it.
            return nil
        }
        connection?.loggedIn = true
        if let id = connection?.iqIDs.next() { try? send(Stanzas.setActive(id: id)) }
        logger.info("logged in", metadata: ["jid": "\(account.jid)"])
        emit(.loggedIn(jid: account.jid.description))
        startPreKeyTask { await $0.checkPreKeys(on: $1) }
        if let number = connection?.number { scheduleKeepalive(on: number) }
        return nil
    }

    /// Arms connection `number`'s next keepalive ping, a random 20–30 s from now (§9.4).
    private func scheduleKeepalive(on number: UInt64) {
        let bounds = configuration.keepaliveInterval
        let interval = Duration.milliseconds(Int64.random(in: bounds.lowerBound.wholeMilliseconds...bounds.upperBound.wholeMilliseconds))
        guard connection?.number == number else { return }
        connection?.keepalive = EventLoopTimer.after(interval) { [weak self] in
            Task { await self?.keepalive(connection: number) }
        }
    }

    /// Pings and re-arms; a ping unanswered within the deadline ends the connection.
    private func keepalive(connection number: UInt64) async {
        guard let connection, connection.number == number, connection.loggedIn else { return }
        do {
            _ = try await request(on: number, timeout: configuration.keepaliveDeadline) { Stanzas.keepalivePing(id: $0) }
        } catch let error as WhatsAppClientError where error == .timedOut {
            if self.connection?.number == number { await end(.keepaliveTimeout) }
            return
        } catch {
            return
        }
        scheduleKeepalive(on: number)
    }

    private func handleServerRequest(_ node: Node) async -> DisconnectReason? {
        guard node.attributes["type"]?.string == "set" || node.attributes["type"]?.string == "get" else { return nil }
        if node.child("pair-device") != nil {
            return await handlePairDevice(node)
        }
        if node.child("pair-success") != nil {
            return await handlePairSuccess(node)
        }
        // Pings and anything else we do not implement get an empty result so the server never waits on us.
        if let result = Stanzas.iqResult(answering: node) { try? send(result) }
        return nil
    }

    /// Runs `work` as the connection's prekey task, given the connection's number. A finished task's handle would keep
    /// the task's memory (its allocator slabs) for the whole connection, so the handle is dropped when the work ends;
    /// `finish` cancels and awaits a task still running, so none outlives its connection.
    private func startPreKeyTask(_ work: @escaping @Sendable (WhatsAppClient, UInt64) async -> Void) {
        guard let connectionNumber = connection?.number else { return }
        // One at a time: a refill asked for while a check runs starts after it (two would hand out the same ids).
        let previous = connection?.preKeyCheck?.task
        preKeyTasksStarted &+= 1
        let number = preKeyTasksStarted
        connection?.preKeyCheck = (number, Task { [weak self] in
            await previous?.value
            guard let self, !Task.isCancelled else { return }
            await work(self, connectionNumber)
            await self.preKeyTaskEnded(number)
        })
    }

    private func preKeyTaskEnded(_ number: UInt64) {
        if connection?.preKeyCheck?.number == number { connection?.preKeyCheck = nil }
    }

    /// After login: asks how many prekeys the server holds and uploads a batch when it runs low (§9.3).
    private func checkPreKeys(on number: UInt64) async {
        do {
            let count = try Stanzas.parsePreKeyCount(try await request(on: number) { Stanzas.preKeyCount(id: $0) })
            guard count < PreKeyPolicy.minimumOnServer else { return }
            await uploadPreKeys(count: count == 0 ? PreKeyPolicy.initialBatch : PreKeyPolicy.refillBatch, on: number)
        } catch {
            logger.warning("prekey count query failed", metadata: ["error": "\(error)"])
        }
    }

    /// Generates `count` prekeys, stores them (private halves included) before uploading their public halves on
    /// connection `number`; does nothing once that connection has ended.
    func uploadPreKeys(count: Int, on number: UInt64) async {
        guard var credentials, connection?.number == number, !Task.isCancelled else { return }
        let keys = PreKey.generate(count: count, firstID: credentials.nextPreKeyID ?? 1)
        let epoch = credentialEpoch.current
        do {
            guard try await writeCredentials(since: epoch, { try await store.savePreKeys(keys) }) else { return }
            credentials.nextPreKeyID = (keys.last?.id ?? 0) % PreKey.maximumID + 1
            guard try await writeCredentials(since: epoch, { [credentials] in try await store.save(credentials) }) else { return }
            self.credentials = credentials
            _ = try await request(on: number) {
                Stanzas.preKeyUpload(
                    id: $0, registrationID: credentials.registrationID, identityPublicKey: credentials.identityKey.publicKey, preKeys: keys,
                    signedPreKey: credentials.signedPreKey)
            }
            logger.info("uploaded prekeys", metadata: ["count": "\(count)"])
        } catch {
            logger.warning("prekey upload failed", metadata: ["error": "\(error)"])
        }
    }

    /// Publishes an event.
    func emit(_ event: WhatsAppEvent) {
        eventSink.yield(event)
    }

    /// Wipes the stored credentials; writes still in flight see the new epoch and wipe again after themselves.
    private func wipeCredentials() async {
        credentialEpoch.advance()
        credentials = nil
        await wipeStore()
    }

    private func wipeStore() async {
        do { try await store.wipe() } catch { logger.error("credential wipe failed", metadata: ["error": "\(error)"]) }
    }

    /// Runs one credential write unless a wipe came since `epoch`; when a wipe came while it ran (the store's
    /// writes and wipe run concurrently), wipes again, so a prekey upload racing a logout cannot bring files back.
    /// Returns whether the credentials still stand.
    private func writeCredentials(since epoch: UInt64, _ write: () async throws -> Void) async throws -> Bool {
        guard credentialEpoch.admits(epoch), !Task.isCancelled else { return false }
        try await write()
        guard credentialEpoch.admits(epoch) else {
            await wipeStore()
            return false
        }
        return true
    }
}

/// A value set once by the connection handler and read after it returns.
final class ResultBox: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: DisconnectReason?
    func set(_ value: DisconnectReason) { lock.withLock { stored = value } }
    var value: DisconnectReason? { lock.withLock { stored } }
}

extension Duration {
    /// Whole milliseconds, for random intervals.
    var wholeMilliseconds: Int64 {
        let parts = components
        return parts.seconds * 1000 + parts.attoseconds / 1_000_000_000_000_000
    }
}
