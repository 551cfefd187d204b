import Foundation
import SessionPool
import Storage
import Tenancy
import TestSupport
import Testing
import WhatsApp
import WhatsAppSimulator

/// How a session ends for good in these tests.
enum Terminal: String, CaseIterable, Sendable {
    case replaced
    case deviceRemoved = "device_removed"
    case logout

    var state: SessionState { self == .replaced ? .replaced : .loggedOut }
    var keepsCredentials: Bool { self == .replaced }
    var simulated: SimulatedTermination? {
        switch self {
        case .replaced: .replaced
        case .deviceRemoved: .deviceRemoved
        case .logout: nil
        }
    }
}

/// Where in the session's life the terminal event lands.
enum Moment: String, CaseIterable, Sendable {
    /// On the login that follows a 515 restart, before any request is answered (before the prekey count query).
    case loginAfter515 = "login_after_515"
    /// While the prekey count query waits for its answer.
    case preKeyCount = "prekey_count"
    /// While the new prekeys are being written to the credential store, before their upload.
    case preKeyWrite = "prekey_write"
    /// While the prekey upload waits for its answer.
    case preKeyUpload = "prekey_upload"
    /// After the prekey upload was answered.
    case afterUpload = "after_upload"
    /// While a keepalive ping waits for its answer.
    case ping
    /// After a keepalive ping was answered.
    case afterPing = "after_ping"

    var usesPings: Bool { self == .ping || self == .afterPing }
}

/// The real system store, with a gate every scan passes right after reading the desired states, and one every lease
/// renewal passes first.
struct ObservedRecords: SessionRecordRepository {
    let base: SQLiteSystemStore
    /// Closed, it holds the maintenance scan with what it read (a read that may go stale meanwhile).
    let scans = Gate()
    /// Closed, it holds the heartbeat's renewal: the node's leases run out while its sessions stay connected (a node
    /// frozen, as by SIGSTOP, whose sockets the server still sees open).
    let renewals = Gate()
    /// Closed, it holds lease claims (a restore taking a session); `claimCalls` counts those under way.
    let claims = Gate()
    let claimCalls = CallCounter()

    func setDesiredState(_ state: DesiredSessionState, for tenant: TenantName, fence: LeaseFence?) async throws(RepositoryError) {
        try await base.setDesiredState(state, for: tenant, fence: fence)
    }
    func desiredStates() async throws(RepositoryError) -> [TenantName: DesiredSessionState] {
        let desired = try await base.desiredStates()
        await scans.pass()
        return desired
    }
    func acquireLease(for tenant: TenantName, nodeID: String, ttl: Duration, now: Date) async throws(RepositoryError) -> SessionLease? {
        await claimCalls.begin()
        await claims.pass()
        do {
            let lease = try await base.acquireLease(for: tenant, nodeID: nodeID, ttl: ttl, now: now)
            await claimCalls.end()
            return lease
        } catch {
            await claimCalls.end()
            throw error
        }
    }
    func renewLeases(_ beats: [LeaseBeat], nodeID: String, ttl: Duration, now: Date) async throws(RepositoryError) -> Set<TenantName> {
        await renewals.pass()
        return try await base.renewLeases(beats, nodeID: nodeID, ttl: ttl, now: now)
    }
    func releaseLease(for tenant: TenantName, nodeID: String, generation: Int64, handOver: Bool) async throws(RepositoryError) {
        try await base.releaseLease(for: tenant, nodeID: nodeID, generation: generation, handOver: handOver)
    }
    func leases() async throws(RepositoryError) -> [SessionLease] { try await base.leases() }
    func lease(of tenant: TenantName) async throws(RepositoryError) -> SessionLease? { try await base.lease(of: tenant) }
}

/// Calls under way.
actor CallCounter {
    private(set) var underWay = 0
    func begin() { underWay += 1 }
    func end() { underWay -= 1 }
}

/// Credential writes in flight and done, and a gate that holds prekey writes.
actor WriteLog {
    let preKeyGate = Gate()
    private(set) var inFlight = 0
    private(set) var completed = 0
    func begin() { inFlight += 1 }
    func end() {
        inFlight -= 1
        completed += 1
    }
}

/// The real encrypted credential store, with its writes counted in a `WriteLog`.
struct ObservedCredentialStore: CredentialStore {
    let base: any CredentialStore
    let writes: WriteLog

    func load() async throws -> DeviceCredentials? { try await base.load() }
    func save(_ credentials: DeviceCredentials) async throws { try await track { try await base.save(credentials) } }
    func savePreKeys(_ preKeys: [PreKey]) async throws {
        try await track {
            await writes.preKeyGate.pass()
            try await base.savePreKeys(preKeys)
        }
    }
    func wipe() async throws { try await base.wipe() }
    func loadPreKeys() async throws -> [PreKey] { try await base.loadPreKeys() }
    func removePreKeys(_ ids: Set<UInt32>) async throws { try await track { try await base.removePreKeys(ids) } }

    private func track(_ write: () async throws -> Void) async throws {
        await writes.begin()
        do { try await write() } catch {
            await writes.end()
            throw error
        }
        await writes.end()
    }
}

/// Lets the maintenance loop scan three more times and finish any restore it queued.
func settle(_ records: ObservedRecords, _ pool: SessionPool) async throws {
    let arrivals = await records.scans.arrivals
    try await waitUntil { await records.scans.arrivals >= arrivals + 3 }
    try await waitUntil { await pool.isRestored }
}

/// `replaced`, `device_removed` and logout win over everything else the connection was doing: no login after them,
/// no credential write after the end is reported, and a restart after `replaced` connects exactly once.
@Suite(.serialized) struct TerminalOrderingTests {
    @Test(arguments: Terminal.allCases, Moment.allCases)
    func aTerminalEndIsFinal(_ terminal: Terminal, at moment: Moment) async throws {
        let rig = try await PoolRig.make(
            keepaliveInterval: moment.usesPings ? .milliseconds(100) ... .milliseconds(150) : .seconds(20) ... .seconds(30))
        let records = ObservedRecords(base: rig.store)
        let writes = WriteLog()
        let pool = rig.pool(records: records, credentials: { ObservedCredentialStore(base: $0, writes: writes) })
        await pool.startMaintenance()
        let tenant = rig.tenants[0]
        let simulator = rig.simulator

        // Hold the first login's prekey step before pairing, then bring the session to the moment.
        switch moment {
        case .preKeyCount: await simulator.hold(.preKeyCount)
        case .preKeyWrite: await writes.preKeyGate.close()
        case .preKeyUpload: await simulator.hold(.preKeyUpload)
        default: break
        }
        let user = try await rig.pair(tenant, on: pool)
        switch moment {
        case .loginAfter515, .afterUpload:
            try await waitUntil { await simulator.observed.preKeys[user] == PreKeyPolicy.initialBatch }
            try await waitUntil { await writes.inFlight == 0 }
        case .preKeyCount: try await waitUntil { await simulator.observed.heldRequests[SimulatedRequest.preKeyCount.rawValue] == 1 }
        case .preKeyWrite: try await waitUntil { await writes.preKeyGate.waitingCount == 1 }
        case .preKeyUpload: try await waitUntil { await simulator.observed.heldRequests[SimulatedRequest.preKeyUpload.rawValue] == 1 }
        case .ping:
            await simulator.hold(.ping)
            try await waitUntil { await simulator.observed.heldRequests[SimulatedRequest.ping.rawValue] == 1 }
        case .afterPing: try await waitUntil { await simulator.observed.pings[user, default: 0] >= 1 }
        }
        let loginsBefore = await simulator.observed.logins[user] ?? 0

        // The terminal event.
        var logout: Task<Void, any Error>?
        if moment == .loginAfter515, let simulated = terminal.simulated {
            await simulator.terminateNextLogin(of: user, with: simulated)
        }
        if moment == .loginAfter515 { await simulator.sendStreamError(toAccount: user, code: 515) }
        if let simulated = terminal.simulated {
            if moment != .loginAfter515 { await simulator.terminate(user, with: simulated) }
        } else {
            logout = Task { try await pool.logout(tenant) }
        }
        if moment == .preKeyWrite {
            // The connection is closed; the pool must not report the end while the prekey write is still held.
            try await waitUntil { await simulator.observed.liveConnections[user, default: 0] == 0 }
            let reportedEarly = (try? await waitUntil(timeout: .seconds(1)) { await pool.status(of: tenant).state == terminal.state }) != nil
            if reportedEarly { #expect(await writes.inFlight == 0, "the end was reported while a credential write was in flight") }
            await writes.preKeyGate.open()
        }
        try await waitUntil { await pool.status(of: tenant).state == terminal.state }
        #expect(await writes.inFlight == 0, "no credential write in flight once the end is reported")
        #expect(rig.files.files(tenant: tenant).isEmpty == !terminal.keepsCredentials)
        try await logout?.value
        let loginsAtEnd = await simulator.observed.logins[user] ?? 0
        let writesAtEnd = await writes.completed
        if moment != .loginAfter515 { #expect(loginsAtEnd == loginsBefore) }

        // Answer whatever was held, let the maintenance loop scan, and look again.
        for kind in SimulatedRequest.allCases { await simulator.release(kind) }
        await writes.preKeyGate.open()
        try await settle(records, pool)
        let observed = await simulator.observed
        #expect(observed.logins[user] ?? 0 == loginsAtEnd, "no login after the session ended")
        #expect(observed.liveConnections[user, default: 0] == 0)
        #expect(await pool.status(of: tenant).state == terminal.state)
        #expect(await writes.completed == writesAtEnd, "no credential write after the end was reported")
        #expect(rig.files.files(tenant: tenant).isEmpty == !terminal.keepsCredentials)
        #expect(try await rig.store.desiredStates()[tenant] == .stopped)

        if terminal == .replaced {
            try await pool.restart(tenant)
            try await waitUntil { await pool.status(of: tenant).state == .connected }
            try await settle(records, pool)
            #expect(await simulator.observed.logins[user] == loginsAtEnd + 1, "a restart connects exactly once")
            #expect(await simulator.observed.liveConnections[user] == 1)
        }
        await pool.shutdown()
        await simulator.stop()
    }

    @Test func aScanThatReadTheSessionAsRunningBeforeItWasReplacedDoesNotRestoreIt() async throws {
        let rig = try await PoolRig.make()
        let records = ObservedRecords(base: rig.store)
        let pool = rig.pool(records: records)
        await pool.startMaintenance()
        let tenant = rig.tenants[0]
        let user = try await rig.pair(tenant, on: pool)
        #expect(try await rig.store.desiredStates()[tenant] == .running)

        // Hold the next scan with what it read (running), end the session meanwhile, then let the scan go on.
        await records.scans.close()
        try await waitUntil { await records.scans.waitingCount == 1 }
        let logins = await rig.simulator.observed.logins[user]
        await rig.simulator.terminate(user, with: .replaced)
        try await waitUntil {
            let status = await pool.status(of: tenant)
            return status.state == .replaced && status.ownerNode == nil
        }
        await records.scans.open()
        try await settle(records, pool)
        #expect(await rig.simulator.observed.logins[user] == logins, "the stale scan did not restore the session")
        #expect(await pool.status(of: tenant).state == .replaced)
        await pool.shutdown()
        await rig.simulator.stop()
    }
}
