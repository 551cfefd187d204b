import Foundation
import Storage
import Tenancy
import TestSupport
import Testing
import WhatsApp

/// The hot cache of sealed Signal records: used only under the lease it was filled under, bounded in bytes, and
/// never a way around the seal.
@Suite struct SealedRecordCacheTests {
    let acme = try! TenantName("acme")
    let peer = SignalAddress(name: "15550000001", deviceID: 0)

    @Test("records are served from the cache only while this node holds the lease they were cached under", arguments: Backend.available)
    func cacheLastsOneLease(_ backend: Backend) async throws {
        let store = try await backend.makeStore()
        try await store.createTenant(Tenant(name: acme, createdAt: Date(), mfaEnabled: false, instanceID: "acme-1"), adminTokenHash: "x", otpSecret: nil)
        let masterKey = MasterKey.generate()
        let (fencesA, fencesB) = (LeaseFences(nodeID: "node-a"), LeaseFences(nodeID: "node-b"))
        let cache = SealedRecordCache()
        let nodeA = SealedSignalStore(tenant: acme, instanceID: "acme-1", masterKey: masterKey, repository: store, fences: fencesA, cache: cache)
        let nodeB = SealedSignalStore(tenant: acme, instanceID: "acme-1", masterKey: masterKey, repository: store, fences: fencesB)
        let start = Date()
        let leaseA = try #require(try await store.acquireLease(for: acme, nodeID: "node-a", ttl: .seconds(10), now: start))
        fencesA.tookLease(of: acme, nodeID: "node-a", generation: leaseA.generation)
        try await nodeA.save([.session(peer): [1, 1]])
        #expect(cache.usage.entries == 1, "a durable write is cached")
        #expect(try await nodeA.load([.session(peer)])[.session(peer)] == [1, 1])

        // Node B takes the session over and writes; node A takes it back later, under a new generation.
        let leaseB = try #require(try await store.acquireLease(for: acme, nodeID: "node-b", ttl: .seconds(10), now: start.addingTimeInterval(11)))
        fencesB.tookLease(of: acme, nodeID: "node-b", generation: leaseB.generation)
        try await nodeB.save([.session(peer): [2, 2]])
        await #expect(throws: RepositoryError.self) { try await nodeA.save([.session(peer): [3, 3]]) }
        let leaseA2 = try #require(try await store.acquireLease(for: acme, nodeID: "node-a", ttl: .seconds(10), now: start.addingTimeInterval(22)))
        fencesA.tookLease(of: acme, nodeID: "node-a", generation: leaseA2.generation)
        #expect(try await nodeA.load([.session(peer)])[.session(peer)] == [2, 2], "the other node's write is read, not the old cached record")
        #expect(try await nodeA.load([.session(peer)])[.session(peer)] == [2, 2])

        // A record known absent is cached as absent, and a delete is cached too.
        let other = SignalAddress(name: "15550000002", deviceID: 0)
        #expect(try await nodeA.load([.session(other)]).isEmpty)
        try await nodeA.save([.session(peer): nil])
        #expect(try await nodeA.load([.session(peer), .session(other)]).isEmpty)
        #expect(try await nodeB.load([.session(peer)]).isEmpty, "the delete is in the database")

        // The cache holds sealed bytes bound to tenant, kind and key: a store of another instance cannot open them.
        try await nodeA.save([.session(peer): [4, 4]])
        let recreated = SealedSignalStore(tenant: acme, instanceID: "acme-2", masterKey: masterKey, repository: store, fences: fencesA, cache: cache)
        await #expect(throws: SealedSignalStoreError.self) { try await recreated.load([.session(peer)]) }
        try await store.close()
    }

    @Test("the cache stays within its byte limit and forgets a write that failed", arguments: Backend.available)
    func cacheIsBounded(_ backend: Backend) async throws {
        let store = try await backend.makeStore()
        try await store.createTenant(Tenant(name: acme, createdAt: Date(), mfaEnabled: false, instanceID: "acme-1"), adminTokenHash: "x", otpSecret: nil)
        let fences = LeaseFences(nodeID: "node-a")
        let lease = try #require(try await store.acquireLease(for: acme, nodeID: "node-a", ttl: .seconds(3600), now: Date()))
        fences.tookLease(of: acme, nodeID: "node-a", generation: lease.generation)
        let cache = SealedRecordCache(byteLimit: 16 * 1024)
        let signal = SealedSignalStore(tenant: acme, instanceID: "acme-1", masterKey: .generate(), repository: store, fences: fences, cache: cache)
        for index in 0..<100 {
            try await signal.save([.session(SignalAddress(name: "1555\(index)", deviceID: 0)): [UInt8](repeating: UInt8(index), count: 1000)])
            #expect(cache.usage.bytes <= cache.byteLimit)
        }
        #expect(cache.usage.entries > 0 && cache.usage.entries < 100)
        let first = SignalAddress(name: "15550", deviceID: 0)
        #expect(try await signal.load([.session(first)])[.session(first)] == [UInt8](repeating: 0, count: 1000), "an evicted record is read again")

        // A write the database refuses (the tenant is gone) leaves nothing of it in the cache.
        let last = SignalAddress(name: "155599", deviceID: 0)
        #expect(try await store.deleteTenant(named: acme))
        await #expect(throws: (any Error).self) { try await signal.save([.session(last): [7]]) }
        #expect(try await signal.load([.session(last)]).isEmpty)
        try await store.close()
    }
}
