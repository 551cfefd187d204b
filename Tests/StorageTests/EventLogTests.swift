import Foundation
import Storage
import Tenancy
import TestSupport
import Testing

/// The per-tenant event log, on both backends: numbered per tenant, duplicates skipped, paged, trimmed, never renumbered.
@Suite struct EventLogTests {
    @Test("events are numbered per tenant from 1, duplicates by key are skipped, pages are oldest first", arguments: Backend.available)
    func appendAndPage(_ backend: Backend) async throws {
        let store = try await backend.makeStore()
        let (acme, beta) = (try TenantName("acme"), try TenantName("beta"))
        for tenant in [acme, beta] {
            try await store.createTenant(Tenant(name: tenant, createdAt: Date(), mfaEnabled: false), adminTokenHash: "x", otpSecret: nil)
        }
        let t0 = Date(timeIntervalSince1970: 1_800_000_000)
        let ids = try await store.appendEvents([
            NewTenantEvent(tenant: acme, type: "session", at: t0, data: #"{"state":"connecting"}"#),
            NewTenantEvent(tenant: beta, type: "session", at: t0, data: #"{"state":"pairing"}"#),
            NewTenantEvent(tenant: acme, type: "message", at: t0, data: #"{"id":"M1"}"#, dedupeKey: "message:M1"),
            NewTenantEvent(tenant: acme, type: "message", at: t0, data: #"{"id":"M1"}"#, dedupeKey: "message:M1"),
        ])
        #expect(ids == [1, 1, 2, nil])
        #expect(try await store.appendEvents([NewTenantEvent(tenant: acme, type: "message", at: t0, data: "{}", dedupeKey: "message:M1")]) == [nil])
        #expect(try await store.appendEvents([NewTenantEvent(tenant: acme, type: "session", at: t0.addingTimeInterval(10), data: "{}")]) == [3])

        let all = try await store.events(of: acme, after: 0, limit: 100)
        #expect(all.map(\.id) == [1, 2, 3])
        #expect(all[1] == StoredTenantEvent(id: 2, type: "message", at: t0, data: #"{"id":"M1"}"#))
        #expect(try await store.events(of: acme, after: 1, limit: 1).map(\.id) == [2])
        #expect(try await store.events(of: beta, after: 0, limit: 100).map(\.data) == [#"{"state":"pairing"}"#])

        // Trimming removes old events; ids go on from where they were.
        #expect(try await store.trimEvents(olderThan: t0.addingTimeInterval(5)) == 3)
        #expect(try await store.events(of: acme, after: 0, limit: 100).map(\.id) == [3])
        #expect(try await store.appendEvents([NewTenantEvent(tenant: acme, type: "session", at: t0, data: "{}")]) == [4])

        // An event for a tenant that does not exist fails the whole batch.
        await #expect(throws: RepositoryError.self) {
            try await store.appendEvents([
                NewTenantEvent(tenant: acme, type: "session", at: t0, data: "{}"),
                NewTenantEvent(tenant: try TenantName("ghost"), type: "session", at: t0, data: "{}"),
            ])
        }
        #expect(try await store.events(of: acme, after: 0, limit: 100).map(\.id) == [3, 4])
        #expect(try await store.deleteTenant(named: acme))
        #expect(try await store.events(of: acme, after: 0, limit: 100).isEmpty)
        try await store.close()
    }

    @Test("a commit stores each write's events and records together; a fenced write leaves out the rest of its chain", arguments: Backend.available)
    func commitKeepsWritesAndChainsWhole(_ backend: Backend) async throws {
        let store = try await backend.makeStore()
        let (acme, beta) = (try TenantName("acme"), try TenantName("beta"))
        for tenant in [acme, beta] {
            try await store.createTenant(Tenant(name: tenant, createdAt: Date(), mfaEnabled: false), adminTokenHash: "x", otpSecret: nil)
        }
        let start = Date()
        let lease = try #require(try await store.acquireLease(for: acme, nodeID: "node-a", ttl: .seconds(1), now: start))
        _ = try #require(try await store.acquireLease(for: acme, nodeID: "node-b", ttl: .seconds(30), now: start.addingTimeInterval(5)))
        func write(_ tenant: TenantName, _ id: String, fence: LeaseFence? = nil, chain: Int?) -> DurableWrite {
            DurableWrite(
                events: [NewTenantEvent(tenant: tenant, type: "message", at: start, data: #"{"id":"\#(id)"}"#, dedupeKey: "message:\(id)")],
                records: SealedRecordWrite(tenant: tenant, changes: [SealedRecordChange(kind: "session", key: id, sealed: [1])], fence: fence),
                chain: chain)
        }
        let outcomes = try await store.commit([
            write(acme, "A1", fence: .holder(nodeID: "node-a", generation: lease.generation), chain: 0), write(acme, "A2", chain: 0),
            write(beta, "B1", chain: 1), write(acme, "A3", chain: nil),
        ])
        #expect(outcomes.map { $0 == nil } == [true, true, false, false], "A1 fenced, A2 built on it; B1 and A3 stand alone")
        #expect(try await store.events(of: acme, after: 0, limit: 10).map(\.data) == [#"{"id":"A3"}"#])
        #expect(try await store.sealedRecordKeys(of: acme, kind: "session") == ["A3"])
        #expect(try await store.events(of: beta, after: 0, limit: 10).map(\.data) == [#"{"id":"B1"}"#])
        #expect(try await store.sealedRecordKeys(of: beta, kind: "session") == ["B1"])
        try await store.close()
    }
}
