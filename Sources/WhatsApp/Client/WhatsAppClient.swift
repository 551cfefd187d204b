import Foundation
import Logging
import NIOCore
import NIOWebSocket
import SwiftProtobuf
import WABinary
import WAProto
import WSClient

/// One WhatsApp companion session: connects, pairs or logs in, keeps the connection alive, answers requests.
///
/// `run()` drives one connection and returns why it ended; the caller decides whether to call it again
/// (see `DisconnectReason.disposition`). The client holds no threads of its own: the connection lives in
/// the WebSocket handler task, keepalive and request timeouts are child tasks of it.
public actor WhatsAppClient {
    /// Events, newest kept when the consumer is slow (bounded).
    public nonisolated let events: AsyncStream<WhatsAppEvent>
    private let eventSink: AsyncStream<WhatsAppEvent>.Continuation
    let configuration: WhatsAppClientConfiguration
    let store: any CredentialStore
    /// Where Signal records and received messages go; nil: messages are acked unread (clients that only pair).
    let messaging: ClientMessaging?
    /// Awaited once the phone's pair-success verified, before the paired credentials are stored (the host records
    /// that the session should run, so a crash between the two cannot leave a paired session nobody restores).
    let pairingAccepted: (@Sendable () async -> Void)?
    let logger: Logger
    var credentials: DeviceCredentials?
    /// Moves on at each credential wipe; a write that started before one must not outlive it.
    var credentialEpoch = Epoch()
    /// Numbers the prekey tasks, so one that ends drops only its own handle.
    var preKeyTasksStarted: UInt64 = 0
    /// Numbers the QR rotations, so a timer of a cancelled rotation does nothing.
    var qrRotationsStarted: UInt64 = 0
    var connection: Connection?
    /// The attempt in progress until its WebSocket is upgraded, and the reads of the connection it makes: until the
    /// connection is attached (the login's answer), `disconnect()` ends these, as `end` has no connection to end yet.
    private var connecting: (attempt: ConnectAttempt, reads: ReadGate)?
    private var stopRequested = false
    /// Moves on at each connection; timers, requests and the prekey task of an older connection are dropped.
    private var connectionEpoch = Epoch()
    private var loggingOut = false
    /// One receive or send at a time uses the Signal state; the others wait in order.
    var signalStateBusy = false
    var signalStateWaiters: [CheckedContinuation<Void, Never>] = []
    /// The last few texts sent, for retry receipts that come before the send is logged (bounded; empty while idle).
    var recentSends: [(id: String, chat: JID, text: String)] = []
    /// Retry receipts being answered, and how often each (message, device) was answered (bounded).
    var retriesInFlight = 0
    var retryAnswers: [String: Int] = [:]
    /// Device lists, group members and sender-key holders learned while sending (bounded).
    var sendCaches = SendCaches()
    var signalSaves = SignalSaves()

    public init(
        configuration: WhatsAppClientConfiguration, store: any CredentialStore, messaging: ClientMessaging? = nil,
        pairingAccepted: (@Sendable () async -> Void)? = nil, logger: Logger
    ) {
        self.configuration = configuration
        self.store = store
        self.messaging = messaging
        self.pairingAccepted = pairingAccepted
        self.logger = logger
        (events, eventSink) = AsyncStream.makeStream(of: WhatsAppEvent.self, bufferingPolicy: .bufferingNewest(64))
    }

    /// True while logged in.
    public var isLoggedIn: Bool { connection?.machine.loggedIn ?? false }

    /// The account JID once paired.
    public var accountJID: JID? { credentials?.pairedAccount?.jid }

    /// Connects once and runs until the connection ends; returns why. Never throws: failures are reasons.
    public func run() async -> DisconnectReason {
        stopRequested = false
        let loaded: DeviceCredentials
        do {
            loaded = try await Self.loadOrCreateCredentials(in: store)
        } catch {
            logger.error("cannot load or create credentials", metadata: ["error": "\(error)"])
            return await finish(.networkError("credential store: \(error)"))
        }
        credentials = loaded
        // A disconnect() while the credentials loaded found nothing to end: it ends the run here, before any connection.
        if stopRequested { return await finish(.requested) }
        let connector = WebSocketConnector(
            url: configuration.url, origin: configuration.origin, tlsConfiguration: configuration.tlsConfiguration,
            connectTimeout: configuration.connectTimeout, upgradeTimeout: configuration.upgradeTimeout, maxFrameSize: FrameEncoder.frameLimit,
            closeTimeout: configuration.closeTimeout, timers: configuration.timers, logger: logger)
        let attempt = ConnectAttempt()
        let reads = ReadGate()
        connecting = (attempt, reads)
        defer { connecting = nil }
        let result = ResultBox()
        do {
            try await connector.run(attempt) { inbound, outbound, _ in
                let reason = await self.drive(inbound: inbound, outbound: outbound, credentials: loaded, gate: reads)
                result.set(reason)
            }
        } catch {
            if let reason = result.value { return await finish(reason) }
            if stopRequested { return await finish(.requested) }
            return await finish(.networkError("\(error)"))
        }
        return await finish(result.value ?? .connectionClosed)
    }

    /// The stored credentials, or new ones once saved; read in a child task of their own.
    private static func loadOrCreateCredentials(in store: any CredentialStore) async throws -> DeviceCredentials {
        // The store's calls (a database read) go deeper than the connection's: in the caller's task, the allocator
        // slabs they grew would stay with the runner for the session's life.
        try await withThrowingTaskGroup(of: DeviceCredentials.self) { group in
            group.addTask {
                if let existing = try await store.load() { return existing }
                let created = try DeviceCredentials.generate()
                try await store.save(created)
                return created
            }
            return try await group.next()!
        }
    }

    /// Ends the current connection, if any, without logging out.
    public func disconnect() async {
        stopRequested = true
        connecting?.attempt.abandon()
        // Before the attach, `end` finds no connection: the reads stop here, or the connection would live on.
        if connection == nil { connecting?.reads.stop(.requested) }
        await end(.requested)
    }

    /// Lists the groups the account participates in.
    public func groups() async throws -> [WhatsAppGroup] {
        let response = try await request { Stanzas.participatingGroups(id: $0) }
        do { return try Stanzas.parseGroups(response) } catch { throw WhatsAppClientError.malformedResponse(error.description) }
    }

    /// The prekey bundles of `devices` (to start Signal sessions with them); devices the server has none for are absent.
    public func preKeyBundles(for devices: [JID]) async throws -> [JID: SignalPreKeyBundle] {
        let response = try await request { PreKeyBundleStanzas.request(id: $0, devices: devices) }
        do { return try PreKeyBundleStanzas.parse(response) } catch { throw WhatsAppClientError.malformedResponse(error.description) }
    }

    /// Unlinks this companion (waits for the server's answer), ends the connection and wipes the credentials.
    public func logout() async throws {
        guard let jid = credentials?.pairedAccount?.jid else { throw WhatsAppClientError.notLoggedIn }
        // The server may close the socket right after answering (docs/protocol-notes.md#logout): a close from here on is the logout's.
        loggingOut = true
        defer { loggingOut = false }
        _ = try await request { Stanzas.removeCompanionDevice(id: $0, ownJID: jid) }
        try await wipeCredentials(joiningWrites: true)
        await end(.loggedOut(code: nil))
    }

    /// Starts phone-number code pairing on an unpaired connection; returns the 8-character code to type on the phone.
    public func requestPairingCode(phoneNumber: String) async throws -> String {
        try await startLinkCode(phoneNumber: phoneNumber)
    }

    // MARK: Connection driver (runs in the WebSocket handler task)

    /// Runs the connection; `gate` stops its reads (made by `run`, so a disconnect before the attach reaches them).
    private nonisolated func drive(
        inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, credentials: DeviceCredentials, gate: ReadGate
    ) async -> DisconnectReason {
        let (outgoing, outgoingSink) = AsyncStream.makeStream(of: OutgoingFrame.self, bufferingPolicy: .unbounded)
        let writer = Task { await OutgoingFrame.write(outgoing, to: outbound) }
        // The reads run in a task of their own, so a deadline or the connection's end can stop a read the peer never
        // completes (a frame stalled halfway, a close never answered).
        let reader = Task { await self.readLoop(inbound: inbound, outgoing: outgoingSink, credentials: credentials, gate: gate) }
        gate.attach(reader)
        let reason = await withTaskCancellationHandler { await reader.value } onCancel: { reader.cancel() }
        outgoingSink.finish()
        writer.cancel()
        try? await outbound.close(.normalClosure, reason: nil)
        return reason
    }

    private nonisolated func readLoop(
        inbound: WebSocketInboundStream, outgoing: AsyncStream<OutgoingFrame>.Continuation, credentials: DeviceCredentials, gate: ReadGate
    ) async -> DisconnectReason {
        var frames = FrameReader(inbound: inbound)
        let configuration = self.configuration

        // Handshake: ClientHello with the WA header, ServerHello within the deadline, ClientFinish, and the server's
        // first stanza (<success>, <failure>, pair-device) within the same deadline.
        var encoder = FrameEncoder(firstFramePrefix: FrameEncoder.connectionHeader)
        let timeout = configuration.handshakeTimeout
        let watchdog = configuration.timers.schedule(timeout) { gate.stop(.handshakeFailed("no answer from the server within \(timeout)")) }
        let readTransport: NoiseTransport
        do {
            var handshake = try NoiseHandshake(
                configuration: .init(rootPublicKey: configuration.rootPublicKey), staticKeyPair: credentials.noiseKey)
            outgoing.yield(.frame(try encoder.encode(handshake.makeClientHello())))
            guard let serverHello = try await gate.next(from: &frames) else {
                watchdog.cancel()
                return gate.reason ?? .handshakeFailed("connection closed during the handshake")
            }
            let payload = try payloadBytes(for: credentials)
            let finished = try handshake.receiveServerHello(serverHello, clientPayload: payload, now: Date())
            outgoing.yield(.frame(try encoder.encode(finished.clientFinish)))
            readTransport = finished.transport
            await attach(outgoing: outgoing, writer: finished.transport, gate: gate)
        } catch {
            watchdog.cancel()
            if let reason = gate.reason { return reason }  // stopped by the deadline or a disconnect
            logger.warning("handshake failed", metadata: ["error": "\(error)"])
            return .handshakeFailed("\(error)")
        }

        // Transport: decrypt, unpack, dispatch each stanza in order.
        var reader = readTransport
        do {
            while let frame = try await gate.next(from: &frames) {
                watchdog.cancel()
                let plaintext = try reader.decrypt(frame)
                let node = try FramePlaintext.unpack(plaintext)
                if let reason = await handle(node) { return reason }
            }
        } catch {
            watchdog.cancel()
            return await endReason(or: gate.reason ?? .networkError("\(error)"))
        }
        watchdog.cancel()
        return await endReason(or: gate.reason ?? .connectionClosed)
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

    private func attach(outgoing: AsyncStream<OutgoingFrame>.Continuation, writer: NoiseTransport, gate: ReadGate) {
        connection = Connection(number: connectionEpoch.advance(), outgoing: outgoing, writer: writer, reads: gate)
    }

    private func endReason(or fallback: DisconnectReason) -> DisconnectReason {
        if let reason = connection?.machine.closing { return reason }
        if stopRequested { return .requested }
        if loggingOut { return .loggedOut(code: nil) }
        return fallback
    }

    /// Records why the connection ends and closes the socket; the read loop then returns that reason, at the latest
    /// `closeTimeout` later (a peer that stopped reading never answers the close).
    func end(_ reason: DisconnectReason) async {
        guard var connection, connection.closeDeadline == nil else { return }
        _ = connection.machine.end(reason)
        let reads = connection.reads
        connection.closeDeadline = configuration.timers.schedule(configuration.closeTimeout) { reads.stop() }
        self.connection = connection
        connection.outgoing.yield(.close)
    }

    /// Ends the connection for good: fails its requests, cancels its timers, and waits for its prekey task, so no
    /// work of this connection (a credential write, a request) outlives the reason returned to the caller.
    private func finish(_ reason: DisconnectReason) async -> DisconnectReason {
        let final = connection?.machine.closing ?? reason
        connectionEpoch.advance()
        let ending = connection
        connection = nil
        if var ending {
            ending.failPendingRequests()
            ending.outgoing.finish()
            ending.keepalive?.cancel()
            ending.closeDeadline?.cancel()
            if case .qr(let rotation, _)? = ending.pairing { rotation.cancel() }
            await ending.joinPreKeyTask()
        }
        await settleSignalSaves()
        logger.info("disconnected", metadata: ["reason": "\(final)"])
        eventSink.yield(.disconnected(final))
        return final
    }

    /// Encrypts and queues one stanza; order of calls is order on the wire.
    func send(_ node: Node) throws { try send(together: [node]) }

    /// Encrypts stanzas and queues them as one socket write, in order (a message's receipt and its ack).
    func send(together nodes: [Node]) throws {
        guard var connection else { throw WhatsAppClientError.notConnected }
        var frames: [[UInt8]] = []
        for node in nodes { frames.append(try FrameEncoder.frame(try connection.writer.encrypt(try FramePlaintext.pack(node)))) }
        connection.outgoing.yield(.frames(frames))
        self.connection = connection
    }

    /// Sends an IQ built with a fresh id and waits for its answer (logged-in connections only). With `number`, only
    /// on that connection: work of an ended connection must not reach the next one.
    func request(on number: UInt64? = nil, timeout: Duration? = nil, _ build: (String) -> Node) async throws -> Node {
        guard var connection, number == nil || connection.number == number else { throw WhatsAppClientError.notConnected }
        guard connection.machine.loggedIn else { throw WhatsAppClientError.notLoggedIn }
        guard connection.machine.closing == nil else { throw WhatsAppClientError.disconnected }
        let id = connection.machine.nextRequestID()
        self.connection = connection
        return try await send(requestWithID: id, node: build(id), timeout: timeout)
    }

    func send(requestWithID id: String, node: Node, timeout: Duration? = nil) async throws -> Node {
        try send(node)
        guard let number = connection?.number else { throw WhatsAppClientError.notConnected }
        let deadline = timeout ?? configuration.requestTimeout
        let response: Node = try await withCheckedThrowingContinuation { continuation in
            let timer = configuration.timers.schedule(deadline) { [weak self] in
                Task { await self?.failPending(id, on: number, with: WhatsAppClientError.timedOut) }
            }
            connection?.pending[id] = PendingRequest(continuation: continuation, deadline: timer)
        }
        if let (code, text) = Stanzas.iqError(response) { throw WhatsAppClientError.serverError(code, text) }
        return response
    }

    private func failPending(_ id: String, on number: UInt64, with error: WhatsAppClientError) {
        guard connection?.number == number else { return }
        connection?.machine.forget(id)
        connection?.pending.removeValue(forKey: id)?.resume(with: .failure(error))
    }

    /// Handles one stanza: carries out the machine's actions in order; returns the reason when one ends the connection.
    private func handle(_ node: Node) async -> DisconnectReason? {
        // The read loop's task keeps its deepest frames for the connection's life: only the actions that wait are here.
        for action in actions(for: node) {
            switch action {
            case .pairing(let node): if let reason = await handlePairing(node) { return reason }
            case .receiveMessage(let node): if let reason = await inChildTask({ await $0.receiveMessage(node) }) { return reason }
            case .receiveReceipt(let node): if let reason = await inChildTask({ await $0.receiveReceipt(node) }) { return reason }
            case .wipeCredentials: await wipeUnlinkedCredentials()
            case .close(let reason): return reason
            default: carryOut(action)
            }
        }
        return nil
    }

    /// The machine's actions for one stanza (none once the connection is gone).
    @inline(never)
    private func actions(for node: Node) -> [ConnectionMachine.Action] {
        let account = credentials?.pairedAccount?.jid
        return connection?.machine.received(node, account: account) ?? []
    }

    /// Carries out an action that does not wait: a stanza to send, an answer, an event, a prekey task, a keepalive.
    @inline(never)
    private func carryOut(_ action: ConnectionMachine.Action) {
        switch action {
        case .send(let node): try? send(node)
        case .answer(let id, let node): connection?.pending.removeValue(forKey: id)?.resume(with: .success(node))
        case .emit(let event):
            if case .loggedIn(let jid) = event { logger.info("logged in", metadata: ["jid": "\(jid)"]) }
            emit(event)
        case .checkPreKeys: startPreKeyTask { await $0.checkPreKeys(on: $1) }
        case .uploadPreKeys(let count): startPreKeyTask { await $0.uploadPreKeys(count: count, on: $1) }
        case .armKeepalive: if let number = connection?.number { scheduleKeepalive(on: number) }
        case .devicesChanged(let user): sendCaches.devicesChanged(of: user)
        case .groupChanged(let group): sendCaches.groupChanged(group)
        case .pairing, .wipeCredentials, .close, .receiveMessage, .receiveReceipt: break  // `handle` carries these out.
        }
    }

    /// Runs `work` in a child task and waits for it: the frames of a message's decryption and stores go with the
    /// child, so the read loop's long-lived task does not keep their allocator slabs for the whole connection.
    private func inChildTask(_ work: @escaping @Sendable (WhatsAppClient) async -> DisconnectReason?) async -> DisconnectReason? {
        await withTaskGroup(of: DisconnectReason?.self) { group in
            group.addTask { await work(self) }
            return await group.next() ?? nil
        }
    }

    /// Wipes the credentials of an account the server unlinked; a failure is logged (the connection ends either way).
    private func wipeUnlinkedCredentials() async {
        do { try await wipeCredentials(joiningWrites: false) } catch { logger.error("credential wipe failed", metadata: ["error": "\(error)"]) }
    }

    /// The pairing steps the server drives: `pair-device`, `pair-success`, the phone's link-code notification.
    private func handlePairing(_ node: Node) async -> DisconnectReason? {
        if node.child("pair-device") != nil { return await handlePairDevice(node) }
        if node.child("pair-success") != nil { return await handlePairSuccess(node) }
        return await handleNotification(node)
    }


    /// Publishes an event.
    func emit(_ event: WhatsAppEvent) {
        eventSink.yield(event)
    }
}
