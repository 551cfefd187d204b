import Foundation
import Storage
import Tenancy
import TestSupport
import Testing
import WhatsApp

/// Credentials kept as database rows: sealed as the files are, bound to their tenant, and fenced by the writer's lease.
@Suite struct DatabaseCredentialStoreTests {
    let acme = try! TenantName("acme")
    let beta = try! TenantName("beta")

    func makeTenants(_ store: any SystemStore) async throws {
        for (name, instance) in [(acme, "acme-1"), (beta, "beta-1")] {
            try await store.createTenant(Tenant(name: name, createdAt: Date(), mfaEnabled: false, instanceID: instance), adminTokenHash: "x", otpSecret: nil)
        }
    }

    func credentials(_ tenant: TenantName, _ files: any CredentialFiles, instance: String) -> TenantCredentialStore {
        TenantCredentialStore(tenant: tenant, files: files, tenantRow: {
            Tenant(name: tenant, createdAt: Date(), mfaEnabled: false, instanceID: instance)
        })
    }

    @Test("rows hold the same sealed bytes as files, open only as their own tenant's, and move both ways", arguments: Backend.available)
    func rowsAreSealedLikeFiles(_ backend: Backend) async throws {
        let store = try await backend.makeStore()
        try await makeTenants(store)
        let masterKey = MasterKey.generate()
        let rows = DatabaseCredentialStore(repository: store, masterKey: masterKey, fences: nil)
        let files = try EncryptedCredentialStore(directory: try makeTemporaryDirectory() + "/auth", masterKey: masterKey)
        let device = try DeviceCredentials.generate()
        let preKeys = PreKey.generate(count: 50, firstID: 1)
        let inRows = credentials(acme, rows, instance: "acme-1")
        try await inRows.save(device)
        try await inRows.savePreKeys(preKeys)
        #expect(try await inRows.load() == device)
        #expect(try await inRows.loadPreKeys(ids: [3, 7]).map(\.id) == [3, 7])
        try await inRows.removePreKeys([3])
        #expect(try await inRows.loadPreKeys().count == 49)
        #expect(try await rows.fileNames(of: acme) == [TenantCredentialStore.fileName, TenantCredentialStore.preKeyFileName].sorted())

        // Stored sealed: the plaintext's private key is nowhere in the row.
        let sealed = try #require(try await rows.sealedBytes(file: TenantCredentialStore.fileName, tenant: acme))
        let plain = try JSONEncoder().encode(device)
        #expect(!sealed.contains(subsequence: Array(plain.prefix(32))))

        // The same bytes open as a file under auth/, and nowhere else.
        try files.storeSealed(sealed, file: TenantCredentialStore.fileName, tenant: acme)
        #expect(try await credentials(acme, files, instance: "acme-1").load() == device)
        try await rows.storeSealed(sealed, file: TenantCredentialStore.fileName, tenant: beta)
        await #expect(throws: CredentialStoreError.self) { try await credentials(beta, rows, instance: "beta-1").load() }
        await #expect(throws: CredentialStoreError.self) { try await credentials(acme, rows, instance: "acme-2").load() }
        let otherKey = DatabaseCredentialStore(repository: store, masterKey: .generate(), fences: nil)
        await #expect(throws: CredentialStoreError.self) { try await credentials(acme, otherKey, instance: "acme-1").load() }
        var flipped = sealed
        flipped[flipped.count / 2] ^= 1
        try await rows.storeSealed(flipped, file: "device-copy.json", tenant: acme)
        await #expect(throws: CredentialStoreError.self) { try await rows.read(file: "device-copy.json", tenant: acme, instanceID: "acme-1") }

        try await rows.wipe(tenant: acme)
        #expect(try await rows.fileNames(of: acme).isEmpty)
        #expect(try await inRows.load() == nil)
        await #expect(throws: CredentialStoreError.self) { try await rows.storeSealed(sealed, file: "../x", tenant: acme) }
    }

    @Test("a node that lost the lease can no longer write or wipe the credentials the new owner stored", arguments: Backend.available)
    func writesAreFencedByTheLease(_ backend: Backend) async throws {
        let store = try await backend.makeStore()
        try await makeTenants(store)
        let masterKey = MasterKey.generate()
        let (fencesA, fencesB) = (LeaseFences(nodeID: "node-a"), LeaseFences(nodeID: "node-b"))
        let nodeA = credentials(acme, DatabaseCredentialStore(repository: store, masterKey: masterKey, fences: fencesA), instance: "acme-1")
        let nodeB = credentials(acme, DatabaseCredentialStore(repository: store, masterKey: masterKey, fences: fencesB), instance: "acme-1")
        let start = Date()
        let leaseA = try #require(try await store.acquireLease(for: acme, nodeID: "node-a", ttl: .seconds(10), now: start))
        fencesA.tookLease(of: acme, nodeID: "node-a", generation: leaseA.generation)
        let first = try DeviceCredentials.generate()
        try await nodeA.save(first)

        // Node A stalls past its lease; node B takes the session over and stores its own state.
        let leaseB = try #require(try await store.acquireLease(for: acme, nodeID: "node-b", ttl: .seconds(3600), now: start.addingTimeInterval(11)))
        #expect(leaseB.generation > leaseA.generation)
        fencesB.tookLease(of: acme, nodeID: "node-b", generation: leaseB.generation)
        let second = try DeviceCredentials.generate()
        try await nodeB.save(second)

        await #expect(throws: CredentialStoreError.self) { try await nodeA.save(try DeviceCredentials.generate()) }
        await #expect(throws: CredentialStoreError.self) { try await nodeA.savePreKeys(PreKey.generate(count: 2, firstID: 1)) }
        await #expect(throws: CredentialStoreError.self) { try await nodeA.wipe() }
        do {
            try await nodeA.save(first)
            Issue.record("a fenced write landed")
        } catch let error as CredentialStoreError {
            #expect(error.kind == .fenced)
        }
        #expect(try await nodeB.load() == second, "the new owner's credentials are intact")

        // The Signal store is fenced the same way.
        let signalA = SealedSignalStore(tenant: acme, instanceID: "acme-1", masterKey: masterKey, repository: store, fences: fencesA)
        let signalB = SealedSignalStore(tenant: acme, instanceID: "acme-1", masterKey: masterKey, repository: store, fences: fencesB)
        let peer = SignalAddress(name: "15550000001", deviceID: 0)
        try await signalB.save([.session(peer): [1, 2, 3]])
        await #expect(throws: RepositoryError.self) { try await signalA.save([.session(peer): [9, 9, 9]]) }
        #expect(try await signalB.load([.session(peer)])[.session(peer)] == [1, 2, 3])

        // Once B releases its lease, a stopped session's wipe (a logout) goes through from any node.
        try await store.releaseLease(for: acme, nodeID: "node-b", generation: leaseB.generation)
        try await nodeA.wipe()
        #expect(try await nodeB.load() == nil)
    }
}

extension Array where Element == UInt8 {
    func contains(subsequence: [UInt8]) -> Bool {
        guard !subsequence.isEmpty, subsequence.count <= count else { return false }
        return (0...(count - subsequence.count)).contains { Array(self[$0..<($0 + subsequence.count)]) == subsequence }
    }
}
