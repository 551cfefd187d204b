import Foundation
import Logging
import Storage
import Tenancy
import TestSupport
import Testing

/// One contract suite, run against every backend: SQLite files and the PostgreSQL server `./ops/test` starts.
@Suite struct StorageContractTests {
    static func tenant(_ name: String, mfa: Bool = true, at seconds: TimeInterval = 1_700_000_000) throws -> Tenant {
        Tenant(name: try TenantName(name), createdAt: Date(timeIntervalSince1970: seconds), mfaEnabled: mfa)
    }

    @Test(arguments: Backend.available)
    func auditRetentionDeletesOnlyOldEntries(_ backend: Backend) async throws {
        let store = try await backend.makeStore()
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        for days in [100.0, 91, 1] {
            try await store.appendAudit(
                AuditEvent(at: now.addingTimeInterval(-days * 86_400), actor: "anonymous", action: "auth.token_invalid", tenant: nil, clientAddress: "192.0.2.1", detail: "\(days)"))
        }
        #expect(try await store.trimAudit(olderThan: now.addingTimeInterval(-90 * 86_400)) == 2)
        #expect(try await store.auditEvents(tenant: nil, limit: 10).map(\.detail) == ["1.0"])
        try await store.close()
    }

    @Test(arguments: Backend.available)
    func tenantsCreateListDelete(_ backend: Backend) async throws {
        let store = try await backend.makeStore()
        print("storage contract: tenants on \(store.backendName)")
        let acme = try Self.tenant("acme")
        try await store.createTenant(acme, adminTokenHash: "$argon2id$hash-a", otpSecret: [1, 2, 3])
        try await store.createTenant(try Self.tenant("beta", mfa: false), adminTokenHash: "$argon2id$hash-b", otpSecret: nil)
        #expect(try await store.tenant(named: acme.name) == acme)
        #expect(try await store.listTenants().map(\.name.rawValue) == ["acme", "beta"])
        // The instance id round-trips; a tenant without one (made before it existed) reads back without one.
        var gamma = try Self.tenant("gamma")
        gamma.instanceID = Tenant.newInstanceID()
        try await store.createTenant(gamma, adminTokenHash: "x", otpSecret: nil)
        #expect(try await store.tenant(named: gamma.name)?.instanceID == gamma.instanceID)
        #expect(try await store.listTenants(limit: 3).map(\.instanceID) == [nil, nil, gamma.instanceID])
        #expect(try await store.listTenants(limit: 1).count == 1)
        #expect(try await store.deleteTenant(named: gamma.name))
        await #expect(throws: RepositoryError.self) {
            try await store.createTenant(try Self.tenant("acme"), adminTokenHash: "x", otpSecret: nil)
        }
        await expectRepositoryError(.conflict) {
            try await store.createTenant(try Self.tenant("acme"), adminTokenHash: "x", otpSecret: nil)
        }
        #expect(try await store.adminTokenHash(for: acme.name) == "$argon2id$hash-a", "a failed duplicate must not touch the original")
        #expect(try await store.deleteTenant(named: acme.name))
        #expect(try await !store.deleteTenant(named: acme.name))
        #expect(try await store.tenant(named: acme.name) == nil)
        #expect(try await store.adminTokenHash(for: acme.name) == nil, "token hash cascades")
        #expect(try await store.otpSecret(for: acme.name) == nil, "OTP secret cascades")
        try await store.close()
    }

    @Test(arguments: Backend.available)
    func adminAndOperatorTokenHashes(_ backend: Backend) async throws {
        let store = try await backend.makeStore()
        let acme = try Self.tenant("acme")
        try await store.createTenant(acme, adminTokenHash: "h1", otpSecret: nil)
        try await store.replaceAdminTokenHash(for: acme.name, with: "h2")
        #expect(try await store.adminTokenHash(for: acme.name) == "h2")
        await expectRepositoryError(.notFound) {
            try await store.replaceAdminTokenHash(for: try TenantName("ghost"), with: "h")
        }
        #expect(try await store.operatorTokenHash() == nil)
        try await store.replaceOperatorTokenHash(with: "op1")
        try await store.replaceOperatorTokenHash(with: "op2")
        #expect(try await store.operatorTokenHash() == "op2")
        try await store.close()
    }

    @Test(arguments: Backend.available)
    func otpSecretsAndReplayGuard(_ backend: Backend) async throws {
        let store = try await backend.makeStore()
        let acme = try Self.tenant("acme")
        try await store.createTenant(acme, adminTokenHash: "h", otpSecret: [9, 8, 7])
        #expect(try await store.otpSecret(for: acme.name) == StoredOTPSecret(sealedSecret: [9, 8, 7], lastAcceptedStep: nil))
        #expect(try await store.consumeOTPStep(for: acme.name, step: 100))
        #expect(try await !store.consumeOTPStep(for: acme.name, step: 100), "same step twice")
        #expect(try await !store.consumeOTPStep(for: acme.name, step: 99), "earlier step")
        #expect(try await store.consumeOTPStep(for: acme.name, step: 101))
        try await store.replaceOTPSecret(for: acme.name, with: [1])
        #expect(try await store.otpSecret(for: acme.name) == StoredOTPSecret(sealedSecret: [1], lastAcceptedStep: nil))
        try await store.replaceOTPSecret(for: acme.name, with: nil)
        #expect(try await store.otpSecret(for: acme.name) == nil)
        #expect(try await store.tenant(named: acme.name)?.mfaEnabled == false)
        await expectRepositoryError(.notFound) {
            try await store.replaceOTPSecret(for: try TenantName("ghost"), with: [1])
        }
        try await store.close()
    }

    @Test(arguments: Backend.available)
    func desiredState(_ backend: Backend) async throws {
        let store = try await backend.makeStore()
        let acme = try Self.tenant("acme")
        try await store.createTenant(acme, adminTokenHash: "h", otpSecret: nil)
        #expect(try await store.desiredStates().isEmpty)
        try await store.setDesiredState(.running, for: acme.name)
        try await store.setDesiredState(.stopped, for: acme.name)
        try await store.setDesiredState(.running, for: acme.name)
        #expect(try await store.desiredStates() == [acme.name: .running])
        await expectRepositoryError(.notFound) {
            try await store.setDesiredState(.running, for: try TenantName("ghost"))
        }
        try await store.close()
    }

    @Test(arguments: Backend.available)
    func leasesHaveOneOwnerUntilTheyExpire(_ backend: Backend) async throws {
        let store = try await backend.makeStore()
        let acme = try Self.tenant("acme")
        try await store.createTenant(acme, adminTokenHash: "h", otpSecret: nil)
        let t0 = Date(timeIntervalSince1970: 1_800_000_000)
        let ttl = Duration.seconds(30)

        let first = try #require(try await store.acquireLease(for: acme.name, nodeID: "node-a", ttl: ttl, now: t0))
        #expect(first.nodeID == "node-a" && first.generation == 1)
        #expect(first.expiresAt == t0.addingTimeInterval(30))
        #expect(try await store.acquireLease(for: acme.name, nodeID: "node-b", ttl: ttl, now: t0.addingTimeInterval(10)) == nil)

        // The owner taking its lease again (a restart, a new claim) starts a new tenure: a new generation, and the
        // old tenure's beat and release no longer match.
        let again = try #require(try await store.acquireLease(for: acme.name, nodeID: "node-a", ttl: ttl, now: t0.addingTimeInterval(5)))
        #expect(again.generation == 2 && again.state == "starting")
        #expect(try await store.renewLeases([LeaseBeat(tenant: acme.name, generation: 1, state: "connected", lastError: nil)], nodeID: "node-a", ttl: ttl, now: t0.addingTimeInterval(6)) == [acme.name])
        try await store.releaseLease(for: acme.name, nodeID: "node-a", generation: 1)
        #expect(try await store.leases().first?.expiresAt == again.expiresAt, "an old tenure's release leaves the new one alone")

        // Heartbeat renews and records state.
        let beat = LeaseBeat(tenant: acme.name, generation: 2, state: "connected", lastError: "x")
        #expect(try await store.renewLeases([beat], nodeID: "node-a", ttl: ttl, now: t0.addingTimeInterval(20)).isEmpty)
        #expect(try await store.acquireLease(for: acme.name, nodeID: "node-b", ttl: ttl, now: t0.addingTimeInterval(45)) == nil)

        // After expiry another node takes over with a new generation (its state and error reset), and the old
        // owner's beat is refused.
        let takeover = try #require(try await store.acquireLease(for: acme.name, nodeID: "node-b", ttl: ttl, now: t0.addingTimeInterval(51)))
        #expect(takeover.nodeID == "node-b" && takeover.generation == 3 && takeover.state == "starting" && takeover.lastError == nil)
        #expect(try await store.renewLeases([beat], nodeID: "node-a", ttl: ttl, now: t0.addingTimeInterval(52)) == [acme.name])

        // Release by a stale holder is a no-op; by the owner it frees the row.
        try await store.releaseLease(for: acme.name, nodeID: "node-a", generation: 2)
        #expect(try await store.leases().first?.nodeID == "node-b")
        try await store.releaseLease(for: acme.name, nodeID: "node-b", generation: 3, handOver: true)
        let released = try #require(try await store.leases().first)
        #expect(released.expiresAt <= t0 && released.state == handedOverLeaseState, "the row stays, free, marked handed over")
        #expect(try await store.renewLeases([LeaseBeat(tenant: acme.name, generation: 3, state: "connected", lastError: nil)], nodeID: "node-b", ttl: ttl, now: t0.addingTimeInterval(53)) == [acme.name], "a released lease is not renewed back to life")

        // Generations only grow: the same node taking the session again after its release gets a new one.
        let retaken = try #require(try await store.acquireLease(for: acme.name, nodeID: "node-b", ttl: ttl, now: t0.addingTimeInterval(54)))
        #expect(retaken.generation == 4)
        try await store.releaseLease(for: acme.name, nodeID: "node-b", generation: 4)
        #expect(try await store.leases().first?.state == releasedLeaseState)
        await expectRepositoryError(.notFound) {
            _ = try await store.acquireLease(for: try TenantName("ghost"), nodeID: "node-a", ttl: ttl, now: t0)
        }
        try await store.close()
    }

    @Test(arguments: Backend.available)
    func heartbeatRenewsManyLeasesInOneCall(_ backend: Backend) async throws {
        let store = try await backend.makeStore()
        let t0 = Date(timeIntervalSince1970: 1_800_000_000)
        var beats: [LeaseBeat] = []
        for index in 0..<200 {
            let tenant = try Self.tenant("t\(index)")
            try await store.createTenant(tenant, adminTokenHash: "h", otpSecret: nil)
            let lease = try #require(try await store.acquireLease(for: tenant.name, nodeID: "n", ttl: .seconds(30), now: t0))
            beats.append(LeaseBeat(tenant: tenant.name, generation: lease.generation, state: "connected", lastError: index % 2 == 0 ? nil : "e\(index)"))
        }
        let ghostBeat = LeaseBeat(tenant: try TenantName("ghost"), generation: 1, state: "connected", lastError: nil)
        let lost = try await store.renewLeases(beats + [ghostBeat], nodeID: "n", ttl: .seconds(30), now: t0.addingTimeInterval(10))
        #expect(lost == [ghostBeat.tenant])
        let leases = try await store.leases()
        #expect(leases.count == 200)
        #expect(leases.allSatisfy { $0.expiresAt == t0.addingTimeInterval(40) && $0.state == "connected" })
        #expect(leases.first { $0.tenant.rawValue == "t1" }?.lastError == "e1")
        #expect(leases.first { $0.tenant.rawValue == "t0" }?.lastError == nil)
        try await store.close()
    }

    @Test(arguments: Backend.available)
    func auditLogIsAppendOnlyAndOutlivesTheTenant(_ backend: Backend) async throws {
        let store = try await backend.makeStore()
        let acme = try Self.tenant("acme")
        try await store.createTenant(acme, adminTokenHash: "h", otpSecret: nil)
        let at = Date(timeIntervalSince1970: 1_800_000_000)
        try await store.appendAudit(AuditEvent(at: at, actor: "cli", action: "tenant.create", tenant: "acme", clientAddress: nil, detail: "mfa"))
        try await store.appendAudit(
            AuditEvent(at: at.addingTimeInterval(1), actor: "anonymous", action: "auth.token_invalid", tenant: "acme", clientAddress: "10.0.0.1", detail: nil))
        try await store.appendAudit(AuditEvent(at: at.addingTimeInterval(2), actor: "operator", action: "x", tenant: nil, clientAddress: nil, detail: nil))
        _ = try await store.deleteTenant(named: acme.name)
        let forAcme = try await store.auditEvents(tenant: "acme", limit: 10)
        #expect(forAcme.map(\.action) == ["auth.token_invalid", "tenant.create"])
        #expect(forAcme.first?.clientAddress == "10.0.0.1")
        #expect(forAcme.last?.at == at)
        #expect(try await store.auditEvents(tenant: nil, limit: 2).map(\.action) == ["x", "auth.token_invalid"])
        try await store.close()
    }

    @Test(arguments: Backend.available)
    func migrationsAreIdempotentOnReopen(_ backend: Backend) async throws {
        let directory = try makeTemporaryDirectory()
        let url = try await backend.makeDatabaseURL(directory: directory)
        let logger = Logger(label: "test")
        let first = try await SystemStoreFactory.open(databaseURL: url, dataDirectory: directory, logger: logger)
        try await first.createTenant(try Self.tenant("acme"), adminTokenHash: "h", otpSecret: nil)
        try await first.close()
        let second = try await SystemStoreFactory.open(databaseURL: url, dataDirectory: directory, logger: logger)
        #expect(try await second.listTenants().map(\.name.rawValue) == ["acme"])
        try await second.ping()
        try await second.close()
    }
}

/// The `cluster_nodes` table on every backend.
@Suite struct ClusterNodeContractTests {
    @Test(arguments: Backend.available)
    func nodeRowsAreUpsertedListedForgottenAndRemoved(_ backend: Backend) async throws {
        let store = try await backend.makeStore()
        let t0 = Date(timeIntervalSince1970: 1_800_000_000)
        let old = Date(timeIntervalSince1970: 1_700_000_000)
        let a = ClusterNode(nodeID: "node-a", advertiseURL: "http://10.0.0.1:8080", startedAt: t0, lastBeatAt: t0)
        // The first beat returns the table with this node's row in it.
        #expect(try await store.beatNode(a, forgetBefore: old) == [a])
        let b = ClusterNode(nodeID: "node-b", advertiseURL: nil, startedAt: t0, lastBeatAt: t0.addingTimeInterval(1))
        #expect(try await store.beatNode(b, forgetBefore: old) == [a, b])
        // A later beat of the same node replaces its row (a restart moves started_at too).
        var later = a
        later.lastBeatAt = t0.addingTimeInterval(10)
        later.advertiseURL = "https://node-a.internal"
        #expect(try await store.beatNode(later, forgetBefore: old) == [later, b])
        #expect(try await store.clusterNodes() == [later, b])
        // Rows silent since before the cutoff are deleted by anyone's beat, but never the beating node's own.
        var c = ClusterNode(nodeID: "node-c", advertiseURL: "http://10.0.0.3:8080", startedAt: t0, lastBeatAt: t0.addingTimeInterval(20))
        #expect(try await store.beatNode(c, forgetBefore: t0.addingTimeInterval(5)) == [later, c])
        c.lastBeatAt = t0.addingTimeInterval(30)
        #expect(try await store.beatNode(c, forgetBefore: t0.addingTimeInterval(100)) == [c])
        try await store.removeNode("node-c")
        try await store.removeNode("node-unknown")
        #expect(try await store.clusterNodes().isEmpty)
        try await store.close()
    }

    @Test(arguments: Backend.available)
    func aNewStartEndsAnOlderDrainButNotOneRequestedSinceItBegan(_ backend: Backend) async throws {
        let store = try await backend.makeStore()
        let t0 = Date(timeIntervalSince1970: 1_800_000_000)
        let first = ClusterNode(nodeID: "node-a", advertiseURL: nil, startedAt: t0, lastBeatAt: t0)
        _ = try await store.beatNode(first, forgetBefore: t0.addingTimeInterval(-100))
        // Drained during its first run, then restarted: the new start ends that drain.
        #expect(try await store.setDrainRequested(true, for: "node-a", at: t0.addingTimeInterval(5)))
        var second = ClusterNode(nodeID: "node-a", advertiseURL: nil, startedAt: t0.addingTimeInterval(10), lastBeatAt: t0.addingTimeInterval(11))
        #expect(try await store.beatNode(second, forgetBefore: t0)[0].drainRequested == false)
        // Restarted again, and drained after that start but before its first beat (the row still shows the old start):
        // the request was for the new run, so it stands, and the run's later beats keep it.
        var third = ClusterNode(nodeID: "node-a", advertiseURL: nil, startedAt: t0.addingTimeInterval(20), lastBeatAt: t0.addingTimeInterval(22))
        #expect(try await store.setDrainRequested(true, for: "node-a", at: t0.addingTimeInterval(21)))
        #expect(try await store.beatNode(third, forgetBefore: t0)[0].drainRequested)
        third.lastBeatAt = t0.addingTimeInterval(30)
        #expect(try await store.beatNode(third, forgetBefore: t0)[0].drainRequested)
        // A request made at the very start counts for it too; an undrain clears it whatever the times.
        second.startedAt = t0.addingTimeInterval(40)
        second.lastBeatAt = t0.addingTimeInterval(41)
        #expect(try await store.setDrainRequested(true, for: "node-a", at: t0.addingTimeInterval(40)))
        #expect(try await store.beatNode(second, forgetBefore: t0)[0].drainRequested)
        #expect(try await store.setDrainRequested(false, for: "node-a", at: t0.addingTimeInterval(42)))
        #expect(try await store.clusterNodes()[0].drainRequested == false)
        try await store.close()
    }
}
