import Foundation
import Logging
import Storage
import Tenancy
import TestSupport
import Testing
import WABinary
import WhatsApp
import WhatsAppSimulator

/// A simulator, a client configured to trust it, and the client's real encrypted credential store.
struct Rig {
    let simulator: WhatsAppSimulator
    let store: TenantCredentialStore
    let files: EncryptedCredentialStore
    let configuration: WhatsAppClientConfiguration

    static func make(
        keepaliveInterval: ClosedRange<Duration> = .seconds(20) ... .seconds(30), keepaliveDeadline: Duration = .seconds(10),
        handshakeTimeout: Duration = .seconds(20), closeTimeout: Duration = .seconds(2), timers: ClientTimers = .eventLoop
    ) async throws -> Rig {
        let simulator = try WhatsAppSimulator()
        let url = try await simulator.start()
        let files = try EncryptedCredentialStore(directory: try makeTemporaryDirectory() + "/auth", masterKey: .generate())
        let store = TenantCredentialStore(tenant: try TenantName("acme"), files: files)
        let configuration = WhatsAppClientConfiguration(
            url: url, rootPublicKey: simulator.rootPublicKey, keepaliveInterval: keepaliveInterval, keepaliveDeadline: keepaliveDeadline,
            handshakeTimeout: handshakeTimeout, closeTimeout: closeTimeout, requestTimeout: .seconds(20), timers: timers)
        return Rig(simulator: simulator, store: store, files: files, configuration: configuration)
    }

    func client() -> WhatsAppClient {
        var logger = Logger(label: "test.client")
        logger.logLevel = .warning
        return WhatsAppClient(configuration: configuration, store: store, logger: logger)
    }

    /// Pairs a new client by QR and returns it logged in, with the account user.
    func pairedClient() async throws -> (WhatsAppClient, String, Task<DisconnectReason, Never>) {
        let client = client()
        var events = client.events.makeAsyncIterator()
        let first = Task { await client.run() }
        guard case .qrCode(let qr, _)? = try await next(&events, matching: { if case .qrCode = $0 { true } else { false } }) else {
            throw TestSupportError("no QR code")
        }
        let jid = try await simulator.scanQRCode(qr)
        #expect(await first.value == .restartRequired)
        let second = Task { await client.run() }
        _ = try await next(&events, matching: { if case .loggedIn = $0 { true } else { false } })
        let user = String(jid.prefix { $0 != ":" && $0 != "@" })
        return (client, user, second)
    }
}

/// The next event that matches, within `timeout`.
func next(
    _ events: inout AsyncStream<WhatsAppEvent>.Iterator, timeout: Duration = .seconds(10), matching: (WhatsAppEvent) -> Bool
) async throws -> WhatsAppEvent? {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        guard let event = await events.next() else { return nil }
        if matching(event) { return event }
    }
    throw TestSupportError("no matching event within \(timeout)")
}

/// Waits until `condition` holds, polling, within `timeout`.
func eventually(timeout: Duration = .seconds(10), file: String = #fileID, line: Int = #line, _ condition: () async -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if await condition() { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    throw TestSupportError("condition at \(file):\(line) not met within \(timeout)")
}

@Suite(.serialized) struct ClientSimulatorTests {
    @Test func qrPairingThen515ThenLoginThenGroupsAndLogout() async throws {
        let rig = try await Rig.make()
        let client = rig.client()
        var events = client.events.makeAsyncIterator()
        let registration = Task { await client.run() }
        guard case .qrCode(let qr, _)? = try await next(&events, matching: { if case .qrCode = $0 { true } else { false } }) else {
            Issue.record("no QR")
            return
        }
        #expect(qr.hasPrefix("https://wa.me/settings/linked_devices#"))
        let jid = try await rig.simulator.scanQRCode(qr)
        #expect(try await next(&events, matching: { if case .paired = $0 { true } else { false } }) == .paired(jid: jid))
        #expect(await registration.value == .restartRequired)
        #expect(await rig.simulator.observed.registrations == 1)

        let session = Task { await client.run() }
        #expect(try await next(&events, matching: { if case .loggedIn = $0 { true } else { false } }) == .loggedIn(jid: jid))
        let user = String(jid.prefix { $0 != ":" })
        #expect(await rig.simulator.observed.logins[user] == 1)

        let groups = try await client.groups()
        #expect(groups.map(\.id) == WhatsAppSimulator.groupFixture.map(\.id))
        #expect(groups.map(\.subject) == WhatsAppSimulator.groupFixture.map(\.subject))
        #expect(groups.map(\.participants) == WhatsAppSimulator.groupFixture.map(\.participants))

        try await client.logout()
        #expect(await session.value == .loggedOut(code: nil))
        #expect(await rig.simulator.observed.logouts[user] == 1)
        #expect(try await rig.store.load() == nil, "credentials wiped")
        #expect(rig.files.files(tenant: try TenantName("acme")).isEmpty)
        await rig.simulator.stop()
    }

    @Test func codePairingCompletesAndLogsIn() async throws {
        let rig = try await Rig.make()
        let client = rig.client()
        var events = client.events.makeAsyncIterator()
        let registration = Task { await client.run() }
        _ = try await next(&events, matching: { if case .qrCode = $0 { true } else { false } })
        let code = try await client.requestPairingCode(phoneNumber: "+1 555 123 4567")
        #expect(code.count == 8)
        let jid = try await rig.simulator.enterLinkCode(code)
        #expect(await registration.value == .restartRequired)
        let session = Task { await client.run() }
        #expect(try await next(&events, matching: { if case .loggedIn = $0 { true } else { false } }) == .loggedIn(jid: jid))
        await client.disconnect()
        #expect(await session.value == .requested)
        await rig.simulator.stop()
    }

    @Test func aNewClientReconnectsWithStoredCredentialsWithoutPairing() async throws {
        let rig = try await Rig.make()
        let (client, user, session) = try await rig.pairedClient()
        await client.disconnect()
        #expect(await session.value == .requested)

        let restarted = rig.client()
        var events = restarted.events.makeAsyncIterator()
        let again = Task { await restarted.run() }
        _ = try await next(&events, matching: { if case .loggedIn = $0 { true } else { false } })
        #expect(await rig.simulator.observed.registrations == 1, "no new pairing")
        #expect(await rig.simulator.observed.logins[user] == 2)
        await restarted.disconnect()
        _ = await again.value
        await rig.simulator.stop()
    }

    @Test func prekeysAreUploadedAfterLoginAndRefilledWhenTheServerRunsLow() async throws {
        let rig = try await Rig.make()
        let (client, user, session) = try await rig.pairedClient()
        try await eventually { await rig.simulator.observed.preKeys[user] == PreKeyPolicy.initialBatch }
        let stored = try await rig.store.loadPreKeys()
        #expect(stored.count == PreKeyPolicy.initialBatch, "private halves stored")
        #expect(stored.map(\.id) == Array(1...UInt32(PreKeyPolicy.initialBatch)))
        #expect(try await rig.store.load()?.nextPreKeyID == UInt32(PreKeyPolicy.initialBatch) + 1)

        await rig.simulator.consumePreKeys(ofAccount: user, leaving: 2)
        try await eventually { await rig.simulator.observed.preKeys[user] == 2 + PreKeyPolicy.refillBatch }
        let refilled = try await rig.store.loadPreKeys()
        #expect(refilled.last?.id == UInt32(PreKeyPolicy.initialBatch + PreKeyPolicy.refillBatch))
        #expect(await rig.simulator.observed.rejectedPreKeyUploads == 0)

        // A restart finds enough prekeys on the server and uploads none.
        await client.disconnect()
        _ = await session.value
        let again = rig.client()
        var events = again.events.makeAsyncIterator()
        let run = Task { await again.run() }
        _ = try await next(&events, matching: { if case .loggedIn = $0 { true } else { false } })
        try await Task.sleep(for: .milliseconds(300))
        #expect(await rig.simulator.observed.preKeys[user] == 2 + PreKeyPolicy.refillBatch)
        await again.disconnect()
        _ = await run.value
        await rig.simulator.stop()
    }

    @Test func replacedIsTerminal() async throws {
        let rig = try await Rig.make()
        let (_, user, session) = try await rig.pairedClient()
        await rig.simulator.sendStreamError(toAccount: user, code: nil, conflict: "replaced")
        let reason = await session.value
        #expect(reason == .replaced)
        #expect(reason.disposition == .stop)
        #expect(try await rig.store.load() != nil, "replaced keeps the credentials")
        await rig.simulator.stop()
    }

    @Test func aSecondLoginReplacesTheFirstCountedAsAnOverlapAndNoLongerLive() async throws {
        let rig = try await Rig.make()
        let (_, user, session) = try await rig.pairedClient()
        let again = rig.client()
        var events = again.events.makeAsyncIterator()
        let run = Task { await again.run() }
        _ = try await next(&events, matching: { if case .loggedIn = $0 { true } else { false } })
        #expect(await session.value == .replaced)
        let observed = await rig.simulator.observed
        #expect(observed.replacedByLogin[user] == 1, "the replacement is counted")
        #expect(observed.peakConnectionsPerAccount[user] == 2, "the peak counts the replaced connection with its replacement")
        #expect(observed.liveConnections[user] == 1, "only the new connection is live")
        await again.disconnect()
        _ = await run.value
        await rig.simulator.stop()
    }

    @Test func deviceRemovedWipesCredentials() async throws {
        let rig = try await Rig.make()
        let (_, user, session) = try await rig.pairedClient()
        await rig.simulator.removeDevice(ofAccount: user)
        let reason = await session.value
        #expect(reason == .loggedOut(code: 401))
        #expect(reason.disposition == .stopAndWipeCredentials)
        #expect(try await rig.store.load() == nil)
        await rig.simulator.stop()
    }

    @Test func aDropIsRetryable() async throws {
        let rig = try await Rig.make()
        let (_, user, session) = try await rig.pairedClient()
        await rig.simulator.dropConnections(ofAccount: user)
        let reason = await session.value
        #expect(reason.disposition == .reconnectWithBackoff)
        await rig.simulator.stop()
    }

    @Test func keepalivePingsAreSentAndASilentServerIsDetected() async throws {
        // A deadline generous enough for a loaded machine (the answer waits behind the 812-key upload); no timing is
        // asserted, only that pings flow and that a silent server ends the connection as a keepalive timeout.
        let rig = try await Rig.make(keepaliveInterval: .milliseconds(100) ... .milliseconds(150), keepaliveDeadline: .seconds(5))
        let (_, user, session) = try await rig.pairedClient()
        try await eventually(timeout: .seconds(30)) { await (rig.simulator.observed.pings[user] ?? 0) >= 3 }
        await rig.simulator.setSilent(true, account: user)
        #expect(await session.value == .keepaliveTimeout)
        await rig.simulator.stop()
    }

    @Test func qrCodesRotateOnTheirTimersAndPairingEndsAfterTheLast() async throws {
        let timers = ManualTimers()
        let rig = try await Rig.make(timers: timers.clientTimers)
        let client = rig.client()
        var events = client.events.makeAsyncIterator()
        let session = Task { await client.run() }
        var shown: [String] = []
        for index in 0..<6 {  // the simulator offers six refs, like WhatsApp
            guard case .qrCode(let qr, let lifetime)? = try await next(&events, matching: { if case .qrCode = $0 { true } else { false } })
            else { throw TestSupportError("no QR code \(index)") }
            #expect(lifetime == (index == 0 ? .seconds(60) : .seconds(20)))
            shown.append(qr)
            try await eventually { timers.armed.contains(lifetime) }
            #expect(timers.fire(delay: lifetime) == 1)
        }
        #expect(Set(shown).count == 6, "each ref is shown once")
        #expect(await session.value == .pairingTimedOut)
        await rig.simulator.stop()
    }

    @Test func keepaliveRunsOnItsTimerAndAPingWithoutAnswerEndsTheConnection() async throws {
        let timers = ManualTimers()
        let rig = try await Rig.make(keepaliveInterval: .seconds(25) ... .seconds(25), keepaliveDeadline: .seconds(7), timers: timers.clientTimers)
        let (_, user, session) = try await rig.pairedClient()
        for ping in 1...2 {
            try await eventually { timers.armed.contains(.seconds(25)) }
            #expect(timers.fire(delay: .seconds(25)) == 1)
            try await eventually { await (rig.simulator.observed.pings[user] ?? 0) == ping }
        }
        await rig.simulator.setSilent(true, account: user)
        try await eventually { timers.armed.contains(.seconds(25)) }
        timers.fire(delay: .seconds(25))
        try await eventually { timers.armed.contains(.seconds(7)) }  // the unanswered ping's deadline
        timers.fire(delay: .seconds(7))
        #expect(await session.value == .keepaliveTimeout)
        await rig.simulator.stop()
    }

    @Test func prekeyBundlesComeFromTheUploadAndEachOneTimeKeyIsHandedOutOnce() async throws {
        let rig = try await Rig.make()
        let (client, user, session) = try await rig.pairedClient()
        try await eventually { await (rig.simulator.observed.preKeys[user] ?? 0) > 0 }
        let credentials = try #require(try await rig.store.load())
        let own = try #require(credentials.pairedAccount?.jid)
        let first = try #require(try await client.preKeyBundles(for: [own])[own])
        #expect(first.identityKey == credentials.identityKey.publicKey)
        #expect(first.registrationID == credentials.registrationID)
        #expect(first.signedPreKeyID == credentials.signedPreKey.id && first.signedPreKeySignature == credentials.signedPreKey.signature)
        let second = try #require(try await client.preKeyBundles(for: [own])[own])
        let stored = Set(try await rig.store.loadPreKeys().map(\.id))
        #expect(first.preKey != nil && second.preKey != nil && first.preKey?.id != second.preKey?.id)
        #expect(stored.contains(first.preKey?.id ?? 0) && stored.contains(second.preKey?.id ?? 0))
        // A session started from the fetched bundle opens with the stored private keys.
        let peerIdentity = Curve25519KeyPair.generate()
        let peer = try SignalProtocol(
            records: SignalRecords(identity: peerIdentity, registrationID: 9, signedPreKey: try SignedPreKey.generate(id: 1, identityKey: peerIdentity)))
        try peer.startSession(with: own.signalAddress, bundle: first)
        let ours = try SignalProtocol(
            records: SignalRecords(
                identity: credentials.identityKey, registrationID: credentials.registrationID, signedPreKey: credentials.signedPreKey,
                preKeys: Dictionary(uniqueKeysWithValues: try await rig.store.loadPreKeys().map { ($0.id, $0.keyPair) })))
        #expect(try ours.decrypt(try peer.encrypt([7, 7], for: own.signalAddress), from: SignalAddress(name: "peer", deviceID: 0)) == [7, 7])
        let unknown = JID.phoneNumber("4915112345678")
        #expect(try await client.preKeyBundles(for: [unknown]).isEmpty)
        await client.disconnect()
        _ = await session.value
        await rig.simulator.stop()
    }

    @Test func aClientThatTrustsAnotherRootRefusesTheServer() async throws {
        let rig = try await Rig.make()
        var configuration = rig.configuration
        configuration.rootPublicKey = Curve25519KeyPair.generate().publicKey
        let client = WhatsAppClient(configuration: configuration, store: rig.store, logger: Logger(label: "test"))
        let reason = await client.run()
        guard case .handshakeFailed = reason else {
            Issue.record("expected a handshake failure, got \(reason)")
            return
        }
        #expect(await rig.simulator.observed.registrations == 0)
        await rig.simulator.stop()
    }
}
