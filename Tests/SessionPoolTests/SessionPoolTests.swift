import Foundation
import Logging
import SessionPool
import Storage
import Tenancy
import TestSupport
import Testing
import WhatsApp
import WhatsAppSimulator

/// A simulator, a real SQLite system database with tenants, real encrypted credential files, and pools over them.
struct PoolRig {
    let simulator: WhatsAppSimulator
    let store: SQLiteSystemStore
    let files: EncryptedCredentialStore
    let clientConfiguration: WhatsAppClientConfiguration
    let tenants: [TenantName]

    static func make(
        tenants names: [String] = ["acme"], keepaliveInterval: ClosedRange<Duration> = .seconds(20) ... .seconds(30)
    ) async throws -> PoolRig {
        let simulator = try WhatsAppSimulator()
        let url = try await simulator.start()
        let directory = try makeTemporaryDirectory()
        let store = try SQLiteSystemStore(path: directory + "/system.db")
        let files = try EncryptedCredentialStore(directory: directory + "/auth", masterKey: .generate())
        var tenants: [TenantName] = []
        for name in names {
            let tenant = try TenantName(name)
            try await store.createTenant(Tenant(name: tenant, createdAt: Date(), mfaEnabled: false), adminTokenHash: "x", otpSecret: nil)
            tenants.append(tenant)
        }
        let configuration = WhatsAppClientConfiguration(
            url: url, rootPublicKey: simulator.rootPublicKey, keepaliveInterval: keepaliveInterval, handshakeTimeout: .seconds(20),
            requestTimeout: .seconds(20))
        return PoolRig(simulator: simulator, store: store, files: files, clientConfiguration: configuration, tenants: tenants)
    }

    /// A pool over the rig's database and files; `records` and `credentials` wrap them when a test needs a gate.
    func pool(
        node: String = "node-a", ttl: Duration = .seconds(3), heartbeat: Duration = .milliseconds(200), backoff: Backoff = Backoff(base: .milliseconds(50), cap: .milliseconds(200)),
        records: (any SessionRecordRepository)? = nil, clock: PoolClock = .system,
        credentials: (@Sendable (any CredentialStore) -> any CredentialStore)? = nil
    ) -> SessionPool {
        var logger = Logger(label: "test.pool.\(node)")
        logger.logLevel = .warning
        let files = self.files
        return SessionPool(
            configuration: SessionPoolConfiguration(
                nodeID: node, leaseTTL: ttl, heartbeatInterval: heartbeat, restoreJitter: .milliseconds(20), backoff: backoff,
                qrWait: .seconds(20), clock: clock),
            records: records ?? store, clientConfiguration: clientConfiguration,
            credentialStore: { tenant in
                let store = TenantCredentialStore(tenant: tenant, files: files)
                return credentials?(store) ?? store
            }, logger: logger)
    }

    /// Pairs `tenant` on `pool` by QR through the simulated phone; returns the account user (phone number).
    func pair(_ tenant: TenantName, on pool: SessionPool) async throws -> String {
        let status = try await pool.qrCode(for: tenant)
        let qr = try #require(status.qr)
        #expect(qr.hasPrefix("https://wa.me/settings/linked_devices#"))
        let jid = try await simulator.scanQRCode(qr)
        try await waitUntil { await pool.status(of: tenant).state == .connected }
        return String(jid.prefix { $0 != ":" && $0 != "@" })
    }
}

/// Polls `condition` until it holds or `timeout` passes; the error names the line that waited.
func waitUntil(timeout: Duration = .seconds(15), line: Int = #line, _ condition: () async -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if await condition() { return }
        try await Task.sleep(for: .milliseconds(25))
    }
    throw TestSupportError("condition at line \(line) not met within \(timeout)")
}

@Suite(.serialized) struct SessionPoolTests {
    @Test func qrPairingConnectsThenGroupsThenLogoutWipes() async throws {
        let rig = try await PoolRig.make()
        let pool = rig.pool()
        await pool.startMaintenance()
        let tenant = rig.tenants[0]
        #expect(await pool.status(of: tenant).state == .stopped)
        let user = try await rig.pair(tenant, on: pool)
        let status = await pool.status(of: tenant)
        #expect(status.me?.hasPrefix(user) == true)
        #expect(status.ownerNode == "node-a")
        #expect(try await rig.store.desiredStates()[tenant] == .running)

        let groups = try await pool.groups(for: tenant)
        #expect(groups.map(\.id) == WhatsAppSimulator.groupFixture.map(\.id))
        #expect(groups.map(\.participants.count) == WhatsAppSimulator.groupFixture.map(\.participants.count))

        await #expect(throws: SessionPoolError.self) { try await pool.qrCode(for: tenant) }

        try await pool.logout(tenant)
        #expect(await rig.simulator.observed.logouts[user] == 1)
        #expect(await pool.status(of: tenant).state == .loggedOut)
        #expect(rig.files.files(tenant: tenant).isEmpty, "credentials wiped")
        #expect(try await rig.store.desiredStates()[tenant] == .stopped)
        #expect(try await rig.store.leases().allSatisfy { $0.expiresAt <= Date() && $0.state == releasedLeaseState }, "lease released")
        try await pool.logout(tenant)  // idempotent
        #expect(await pool.status(of: tenant).state == .loggedOut)
        await pool.shutdown()
        await rig.simulator.stop()
    }

    @Test func codePairingThroughThePool() async throws {
        let rig = try await PoolRig.make()
        let pool = rig.pool()
        await pool.startMaintenance()
        let tenant = rig.tenants[0]
        let code = try await pool.pairingCode(for: tenant, phoneNumber: "15551234567")
        #expect(code.count == 8)
        #expect(await pool.status(of: tenant).pairingMethod == .code)
        _ = try await rig.simulator.enterLinkCode(code)
        try await waitUntil { await pool.status(of: tenant).state == .connected }
        await pool.shutdown()
        await rig.simulator.stop()
    }

    @Test func aBadPhoneNumberIsInvalidInput() async throws {
        let rig = try await PoolRig.make()
        let pool = rig.pool()
        await pool.startMaintenance()
        do {
            _ = try await pool.pairingCode(for: rig.tenants[0], phoneNumber: "12")
            Issue.record("expected an error")
        } catch {
            #expect(error.kind == .invalidInput)
        }
        await pool.shutdown()
        await rig.simulator.stop()
    }

    @Test func restoreLogsInWithStoredCredentialsWithoutPairing() async throws {
        let rig = try await PoolRig.make(tenants: ["one", "two"])
        let first = rig.pool()
        await first.startMaintenance()
        var users: [String] = []
        for tenant in rig.tenants { users.append(try await rig.pair(tenant, on: first)) }
        await first.shutdown()
        #expect(try await rig.store.leases().allSatisfy { $0.expiresAt <= Date() && $0.state == handedOverLeaseState }, "graceful shutdown hands the leases over")
        #expect(try await rig.store.desiredStates().values.allSatisfy { $0 == .running }, "shutdown keeps the desired state")

        let second = rig.pool()
        await second.startMaintenance()
        for tenant in rig.tenants { try await waitUntil { await second.status(of: tenant).state == .connected } }
        try await waitUntil { await second.isRestored }
        let observed = await rig.simulator.observed
        #expect(observed.registrations == 2, "no new pairing")
        for user in users { #expect(observed.logins[user] == 2, "the login after pairing, then the restore") }
        await second.shutdown()
        await rig.simulator.stop()
    }

    @Test func twoPoolsOnOneDatabaseNeverBothConnectATenant() async throws {
        let rig = try await PoolRig.make()
        let tenant = rig.tenants[0]
        let a = rig.pool(node: "node-a")
        await a.startMaintenance()
        let user = try await rig.pair(tenant, on: a)
        let b = rig.pool(node: "node-b")
        await b.startMaintenance()
        // b learns of a's lease (and the state a's heartbeat wrote into it) from its next scans.
        try await waitUntil {
            let status = await b.status(of: tenant)
            return status.ownerNode == "node-a" && status.state == .connected
        }
        do {
            try await b.restart(tenant)
            Issue.record("b must not take a live lease")
        } catch {
            #expect(error.kind == .ownedElsewhere)
        }
        #expect(await b.status(of: tenant).state == .connected, "b reports a's session from the lease row")
        await a.shutdown()
        try await waitUntil {
            let status = await b.status(of: tenant)
            return status.ownerNode == "node-b" && status.state == .connected
        }
        #expect(await rig.simulator.observed.peakConnectionsPerAccount[user] == 1)
        await b.shutdown()
        await rig.simulator.stop()
    }

    @Test func aSessionChangingNodesIsMovingNeverWrongState() async throws {
        let rig = try await PoolRig.make()
        let tenant = rig.tenants[0]
        // Scans every 2 s: the handover stays visible long enough to be asked about on a loaded machine.
        let a = rig.pool(node: "node-a", ttl: .seconds(12), heartbeat: .seconds(2))
        await a.startMaintenance()
        let user = try await rig.pair(tenant, on: a)
        let b = rig.pool(node: "node-b", ttl: .seconds(12), heartbeat: .seconds(2))
        await b.startMaintenance()
        try await waitUntil { await b.status(of: tenant).ownerNode == "node-a" }
        await a.shutdown()
        // From the handover until b runs the session, both answer "moving" or "ask the owner"; never "not connected".
        var answers: [String: Int] = [:]
        try await waitUntil(timeout: .seconds(30)) {
            for pool in [a, b] {
                do {
                    _ = try await pool.groups(for: tenant)
                    answers["groups", default: 0] += 1
                } catch let error as SessionPoolError {
                    answers["\(error.kind)", default: 0] += 1
                } catch {
                    answers["\(error)", default: 0] += 1
                }
            }
            return answers["groups", default: 0] > 0
        }
        #expect(answers["moving", default: 0] > 0, "\(answers)")
        #expect(answers["wrongState"] == nil, "\(answers)")
        #expect(await b.status(of: tenant).ownerNode == "node-b")
        #expect(await rig.simulator.observed.peakConnectionsPerAccount[user] == 1)
        await b.shutdown()
        await rig.simulator.stop()
    }

    @Test func aPairingCutOffWhileItsCredentialsAreStoredIsRestoredOrPairsAgain() async throws {
        let rig = try await PoolRig.make()
        let tenant = rig.tenants[0]
        let gate = Gate()
        await gate.close()
        let a = rig.pool(credentials: { PairedSaveGate(base: $0, gate: gate) })
        await a.startMaintenance()
        let qr = try #require(try await a.qrCode(for: tenant).qr)
        // The phone waits for the companion's answer to pair-success, which comes after the credentials are stored.
        let simulator = rig.simulator
        let scan = Task { try await simulator.scanQRCode(qr) }
        // The phone linked the device; the paired credentials are on their way to the disk (a crash may come now).
        try await waitUntil { await gate.waitingCount == 1 }
        #expect(try await rig.store.desiredStates()[tenant] == .running, "recorded before the paired credentials are stored")
        await gate.open()
        _ = try await scan.value
        try await waitUntil { await a.status(of: tenant).state == .connected }
        await a.shutdown()
        // A new start restores it: it was paired and is wanted running.
        let b = rig.pool()
        await b.startMaintenance()
        try await waitUntil { await b.status(of: tenant).state == .connected }
        #expect(await rig.simulator.observed.registrations == 1, "no second pairing")
        await b.shutdown()
        await rig.simulator.stop()
    }

    @Test func replacedIsTerminalAndNotRetried() async throws {
        let rig = try await PoolRig.make()
        let pool = rig.pool()
        await pool.startMaintenance()
        let tenant = rig.tenants[0]
        let user = try await rig.pair(tenant, on: pool)
        let logins = await rig.simulator.observed.logins[user]
        await rig.simulator.sendStreamError(toAccount: user, code: nil, conflict: "replaced")
        try await waitUntil { await pool.status(of: tenant).state == .replaced }
        try await Task.sleep(for: .seconds(1))
        #expect(await rig.simulator.observed.logins[user] == logins, "no reconnect after replaced")
        #expect(await pool.status(of: tenant).state == .replaced)
        #expect(try await rig.store.desiredStates()[tenant] == .stopped)
        #expect(!rig.files.files(tenant: tenant).isEmpty, "replaced keeps credentials")

        try await pool.restart(tenant)
        do { try await waitUntil { await pool.status(of: tenant).state == .connected } } catch {
            // Seen twice in ~15 full runs under load, never alone: say where the session stood, for the next look.
            let status = await pool.status(of: tenant)
            let observed = await rig.simulator.observed
            Issue.record(
                "restart did not connect: state \(status.state), last error \(status.lastError ?? "none"), logins \(observed.logins[user] ?? 0), live \(observed.liveConnections)")
            throw error
        }
        await pool.shutdown()
        await rig.simulator.stop()
    }

    @Test func deviceRemovedWipesCredentials() async throws {
        let rig = try await PoolRig.make()
        let pool = rig.pool()
        await pool.startMaintenance()
        let tenant = rig.tenants[0]
        let user = try await rig.pair(tenant, on: pool)
        await rig.simulator.removeDevice(ofAccount: user)
        try await waitUntil { await pool.status(of: tenant).state == .loggedOut }
        #expect(rig.files.files(tenant: tenant).isEmpty)
        #expect(try await rig.store.desiredStates()[tenant] == .stopped)
        await pool.shutdown()
        await rig.simulator.stop()
    }

    @Test func aDropReconnectsWithBackoff() async throws {
        let rig = try await PoolRig.make()
        let pool = rig.pool()
        await pool.startMaintenance()
        let tenant = rig.tenants[0]
        let user = try await rig.pair(tenant, on: pool)
        let logins = await rig.simulator.observed.logins[user] ?? 0
        await rig.simulator.dropConnections(ofAccount: user)
        try await waitUntil { await (rig.simulator.observed.logins[user] ?? 0) == logins + 1 }
        try await waitUntil { await pool.status(of: tenant).state == .connected }
        await pool.shutdown()
        await rig.simulator.stop()
    }

    @Test func aDropWaitsItsBackoffOnThePoolsClock() async throws {
        let rig = try await PoolRig.make()
        let clock = ManualClock()
        let pool = rig.pool(backoff: Backoff(base: .seconds(30), cap: .seconds(30)), clock: clock.poolClock)
        await pool.startMaintenance()
        let tenant = rig.tenants[0]
        let user = try await rig.pair(tenant, on: pool)
        try await waitUntil { clock.pendingSleeps == [.milliseconds(200)] }  // only the heartbeat waits now
        let logins = await rig.simulator.observed.logins[user] ?? 0

        await rig.simulator.dropConnections(ofAccount: user)
        try await waitUntil { clock.pendingSleeps.count == 2 }
        #expect(clock.pendingSleeps.allSatisfy { $0 <= .seconds(30) }, "the heartbeat and a backoff within its ceiling")
        #expect(await pool.status(of: tenant).state == .reconnecting)
        #expect(await rig.simulator.observed.logins[user] ?? 0 == logins, "no login while the backoff waits")

        clock.advance(by: .seconds(30))
        try await waitUntil { await (rig.simulator.observed.logins[user] ?? 0) == logins + 1 }
        try await waitUntil { await pool.status(of: tenant).state == .connected }
        await pool.shutdown()
        await rig.simulator.stop()
    }

    @Test func statusUpdatesArePublished() async throws {
        let rig = try await PoolRig.make()
        let pool = rig.pool()
        await pool.startMaintenance()
        let tenant = rig.tenants[0]
        let updates = await pool.updates(of: tenant)
        let seen = Task {
            var states: [SessionState] = []
            for await status in updates {
                if states.last != status.state { states.append(status.state) }
                if status.state == .connected { break }
            }
            return states
        }
        _ = try await rig.pair(tenant, on: pool)
        let states = await seen.value
        #expect(states.first == .stopped)
        #expect(states.contains(.pairing))
        #expect(states.last == .connected)
        await pool.shutdown()
        await rig.simulator.stop()
    }
}

@Suite struct BackoffTests {
    @Test func ceilingDoublesUpToTheCap() {
        let backoff = Backoff(base: .seconds(1), cap: .seconds(60))
        #expect(backoff.ceiling(attempt: 1) == .seconds(1))
        #expect(backoff.ceiling(attempt: 2) == .seconds(2))
        #expect(backoff.ceiling(attempt: 6) == .seconds(32))
        #expect(backoff.ceiling(attempt: 7) == .seconds(60))
        #expect(backoff.ceiling(attempt: 1000) == .seconds(60))
    }

    @Test func delaysStayWithinTheCeiling() {
        let backoff = Backoff(base: .milliseconds(100), cap: .seconds(5))
        var generator = SystemRandomNumberGenerator()
        for attempt in 1...20 {
            for _ in 0..<50 {
                let delay = backoff.delay(attempt: attempt, using: &generator)
                #expect(delay >= .zero && delay <= backoff.ceiling(attempt: attempt))
            }
        }
    }
}

/// The real credential store, whose saves of paired credentials wait at a gate (a crash point during pairing).
struct PairedSaveGate: CredentialStore {
    let base: any CredentialStore
    let gate: Gate

    func load() async throws -> DeviceCredentials? { try await base.load() }
    func save(_ credentials: DeviceCredentials) async throws {
        if credentials.isPaired { await gate.pass() }
        try await base.save(credentials)
    }
    func savePreKeys(_ preKeys: [PreKey]) async throws { try await base.savePreKeys(preKeys) }
    func loadPreKeys() async throws -> [PreKey] { try await base.loadPreKeys() }
    func removePreKeys(_ ids: Set<UInt32>) async throws { try await base.removePreKeys(ids) }
    func wipe() async throws { try await base.wipe() }
}
