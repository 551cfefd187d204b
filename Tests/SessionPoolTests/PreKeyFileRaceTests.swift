import Foundation
import Logging
import SessionPool
import Storage
import Synchronization
import Tenancy
import TestSupport
import Testing
import WhatsApp
import WhatsAppSimulator

/// The one-time prekey file is read, changed and written whole: by a received `pkmsg` (its prekey removed) and by a
/// refill (new keys added). The two must not interleave, or one write drops the other's change.
@Suite(.serialized) struct PreKeyFileRaceTests {
    /// A pool over the rig whose prekey-file writes go through `HeldPreKeyWrite`, with one tenant paired.
    func pairedPool() async throws -> (PoolRig, TenantName, HeldPreKeyWrite, SessionPool, account: String) {
        let rig = try await PoolRig.make()
        let tenant = rig.tenants[0]
        let files = HeldPreKeyWrite(base: rig.files)
        var logger = Logger(label: "test.pool")
        logger.logLevel = .warning
        let masterKey = MasterKey.generate()
        let store = rig.store
        let pool = SessionPool(
            configuration: SessionPoolConfiguration(
                nodeID: "node-a", leaseTTL: .seconds(3), heartbeatInterval: .milliseconds(200), restoreJitter: .milliseconds(20),
                backoff: Backoff(base: .milliseconds(50), cap: .milliseconds(200)), qrWait: .seconds(20), clock: .system),
            records: store, clientConfiguration: rig.clientConfiguration, credentialStore: { TenantCredentialStore(tenant: $0, files: files) },
            logger: logger, eventLog: EventLogWriter(repository: store, logger: logger),
            signalStore: { SealedSignalStore(tenant: $0, instanceID: nil, masterKey: masterKey, repository: store) })
        await pool.startMaintenance()
        let account = try await rig.pair(tenant, on: pool)
        try await waitUntil { await rig.simulator.observed.preKeys[account] == PreKeyPolicy.initialBatch }
        return (rig, tenant, files, pool, account)
    }

    @Test("a pkmsg received while a refill writes the prekey file keeps both changes: its prekey removed, the refill's keys stored")
    func aPreKeyRemovalDuringARefillKeepsBothChanges() async throws {
        let (rig, tenant, files, pool, account) = try await pairedPool()

        // The refill's write of the prekey file waits while a new peer's pkmsg reads the file and removes its prekey.
        files.arm()
        await rig.simulator.consumePreKeys(ofAccount: account, leaving: 2)
        try await waitUntil { files.isHolding }
        _ = try await rig.simulator.sendText(from: "15557770001", to: account, text: "first")
        try await waitUntil { await rig.simulator.queuedMessageIDs(ofAccount: account).isEmpty }
        try await waitUntil { await rig.simulator.observed.preKeys[account] == 1 + PreKeyPolicy.refillBatch }
        try await waitUntil { !files.isHolding }

        let stored = Set(try await TenantCredentialStore(tenant: tenant, files: rig.files).loadPreKeys().map(\.id))
        let used = UInt32(PreKeyPolicy.initialBatch - 1)
        let usedIsBack = stored.contains(used)
        #expect(!usedIsBack, "the prekey the pkmsg used stays removed (none is accepted twice)")
        let refill = UInt32(PreKeyPolicy.initialBatch + 1)...UInt32(PreKeyPolicy.initialBatch + PreKeyPolicy.refillBatch)
        let refillStored = refill.allSatisfy { stored.contains($0) }
        #expect(refillStored, "the refill's private halves are stored")

        // Three new peers take the key left and two of the refill: each text opens, none asks for a retry.
        for peer in ["15557770002", "15557770003", "15557770004"] { _ = try await rig.simulator.sendText(from: peer, to: account, text: "later") }
        try await waitUntil { await rig.simulator.queuedMessageIDs(ofAccount: account).isEmpty }
        #expect(await rig.simulator.observed.receipts["retry", default: 0] == 0)
        await pool.shutdown()
        await rig.simulator.stop()
    }

    @Test("a refill while a pkmsg's prekey removal writes the prekey file (after its message was committed) keeps both changes")
    func aRefillDuringAPreKeyRemovalKeepsBothChanges() async throws {
        let (rig, tenant, files, pool, account) = try await pairedPool()

        // The pkmsg's save commits, then its prekey removal writes the file and waits there while a refill is asked for.
        files.arm()
        _ = try await rig.simulator.sendText(from: "15557770001", to: account, text: "first")
        try await waitUntil { files.isHolding }
        await rig.simulator.consumePreKeys(ofAccount: account, leaving: 2)
        try await waitUntil { await rig.simulator.observed.preKeys[account] == 2 + PreKeyPolicy.refillBatch }
        try await waitUntil { !files.isHolding }
        try await waitUntil { await rig.simulator.queuedMessageIDs(ofAccount: account).isEmpty }

        // The simulator hands out the oldest key first: the pkmsg used key 1.
        let stored = Set(try await TenantCredentialStore(tenant: tenant, files: rig.files).loadPreKeys().map(\.id))
        #expect(!stored.contains(1), "the prekey the pkmsg used stays removed")
        let refill = UInt32(PreKeyPolicy.initialBatch + 1)...UInt32(PreKeyPolicy.initialBatch + PreKeyPolicy.refillBatch)
        let refillStored = refill.allSatisfy { stored.contains($0) }
        #expect(refillStored, "the refill's private halves are stored")
        #expect(stored.count == PreKeyPolicy.initialBatch - 1 + PreKeyPolicy.refillBatch)
        await pool.shutdown()
        await rig.simulator.stop()
    }
}

/// The rig's credential files, except that the first prekey-file write after `arm` waits until another prekey-file
/// write is done (at most 2 s): a refill's, while a received pkmsg removes its prekey.
final class HeldPreKeyWrite: CredentialFiles {
    private let base: EncryptedCredentialStore
    private let state = Mutex<(armed: Bool, holding: Bool, otherWrites: Int)>((false, false, 0))

    init(base: EncryptedCredentialStore) { self.base = base }

    func arm() { state.withLock { ($0.armed, $0.otherWrites) = (true, 0) } }

    /// True while the armed write waits.
    var isHolding: Bool { state.withLock { $0.holding } }

    func write(_ contents: [UInt8], file: String, tenant: TenantName, instanceID: String?) async throws {
        guard file == TenantCredentialStore.preKeyFileName else { return try base.write(contents, file: file, tenant: tenant, instanceID: instanceID) }
        let hold = state.withLock { state -> Bool in
            guard state.armed else { return false }
            (state.armed, state.holding) = (false, true)
            return true
        }
        if hold {
            let deadline = ContinuousClock.now + .seconds(2)
            while state.withLock({ $0.otherWrites == 0 }), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
            defer { state.withLock { $0.holding = false } }
            return try base.write(contents, file: file, tenant: tenant, instanceID: instanceID)
        }
        try base.write(contents, file: file, tenant: tenant, instanceID: instanceID)
        state.withLock { $0.otherWrites += 1 }
    }

    func read(file: String, tenant: TenantName, instanceID: String?) async throws -> [UInt8]? { try base.read(file: file, tenant: tenant, instanceID: instanceID) }
    func delete(file: String, tenant: TenantName) async throws { try base.delete(file: file, tenant: tenant) }
    func wipe(tenant: TenantName) async throws { try base.wipe(tenant: tenant) }
    func fileNames(of tenant: TenantName) async throws -> [String] { base.files(tenant: tenant) }
    func sealedBytes(file: String, tenant: TenantName) async throws -> [UInt8]? { try base.sealedBytes(file: file, tenant: tenant) }
    func storeSealed(_ sealed: [UInt8], file: String, tenant: TenantName) async throws { try base.storeSealed(sealed, file: file, tenant: tenant) }
}
