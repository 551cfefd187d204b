import Foundation
import Logging
import SessionPool
import Storage
import Tenancy
import TestSupport
import Testing
import WhatsApp

/// The Signal store in the system database: sealed rows that bring a session back after a restart, on both backends.
@Suite struct SealedSignalStoreTests {
    func party(_ name: String) throws -> (SignalAddress, SignalProtocol) {
        let identity = Curve25519KeyPair.generate()
        let records = SignalRecords(
            identity: identity, registrationID: UInt32.random(in: 1...16380), signedPreKey: try SignedPreKey.generate(id: 1, identityKey: identity),
            preKeys: [1: .generate()])
        return (SignalAddress(name: name, deviceID: 0), try SignalProtocol(records: records))
    }

    @Test("a session stored sealed brings the ratchet back after a restart; rows cannot be moved or opened by another tenant", arguments: Backend.available)
    func sessionsSurviveARestartSealed(_ backend: Backend) async throws {
        let store = try await backend.makeStore()
        let acme = try TenantName("acme")
        try await store.createTenant(Tenant(name: acme, createdAt: Date(), mfaEnabled: false, instanceID: "first"), adminTokenHash: "x", otpSecret: nil)
        let masterKey = MasterKey.generate()
        let signalStore = SealedSignalStore(tenant: acme, instanceID: "first", masterKey: masterKey, repository: store)

        let (aliceAddress, alice) = try party("15550000001")
        let (bobAddress, bob) = try party("15550000002")
        let bobRecords = bob.records
        try alice.startSession(
            with: bobAddress,
            bundle: SignalPreKeyBundle(
                registrationID: bobRecords.registrationID, deviceID: 0, identityKey: bobRecords.identity.publicKey,
                signedPreKeyID: 1, signedPreKey: bobRecords.signedPreKey.keyPair.publicKey,
                signedPreKeySignature: bobRecords.signedPreKey.signature, preKey: (1, bobRecords.preKeys[1]!.publicKey)))
        _ = try bob.decrypt(try alice.encrypt([1], for: bobAddress), from: aliceAddress)
        _ = try alice.decrypt(try bob.encrypt([2], for: aliceAddress), from: bobAddress)
        let changes = alice.records.pendingRecordChanges
        #expect(changes.keys.contains(.session(bobAddress)) && changes.keys.contains(.identity(bobAddress)))
        try await signalStore.save(changes)

        // A restart: our own keys from the credentials, the session from the store.
        var restarted = SignalRecords(
            identity: alice.records.identity, registrationID: alice.records.registrationID, signedPreKey: alice.records.signedPreKey)
        restarted.merge(loaded: try await signalStore.load([.session(bobAddress), .identity(bobAddress), .session(aliceAddress)]))
        #expect(restarted.sessions[bobAddress] == alice.records.sessions[bobAddress])
        let again = try SignalProtocol(records: restarted)
        let message = try again.encrypt([3], for: bobAddress)
        #expect(message.kind == .message, "the stored session is used: a msg, not a new pkmsg")
        #expect(try bob.decrypt(message, from: aliceAddress) == [3])

        // The row is sealed, and bound to its key, tenant and tenant instance.
        let raw = try await store.sealedRecords(of: acme, kind: "session", keys: [bobAddress.description])
        let sealed = try #require(raw[bobAddress.description])
        #expect(sealed != alice.records.sessions[bobAddress])
        let elsewhere = SignalAddress(name: "15559999999", deviceID: 0)
        try await store.writeSealedRecords(of: acme, [SealedRecordChange(kind: "session", key: elsewhere.description, sealed: sealed)])
        await #expect(throws: SealedSignalStoreError.self) { try await signalStore.load([.session(elsewhere)]) }
        let recreated = SealedSignalStore(tenant: acme, instanceID: "second", masterKey: masterKey, repository: store)
        await #expect(throws: SealedSignalStoreError.self) { try await recreated.load([.session(bobAddress)]) }
        let otherKey = SealedSignalStore(tenant: acme, instanceID: "first", masterKey: .generate(), repository: store)
        await #expect(throws: SealedSignalStoreError.self) { try await otherKey.load([.session(bobAddress)]) }

        // Deletes, and the rows go with the tenant.
        try await signalStore.save([.session(elsewhere): nil])
        #expect(try await signalStore.load([.session(elsewhere)]).isEmpty)
        #expect(try await store.deleteTenant(named: acme))
        #expect(try await store.sealedRecords(of: acme, kind: "session", keys: [bobAddress.description]).isEmpty)
        await #expect(throws: RepositoryError.self) {
            try await store.writeSealedRecords(of: acme, [SealedRecordChange(kind: "session", key: "x", sealed: [1])])
        }
        try await store.close()
    }
}

/// A one-time prekey that a `pkmsg` used is deleted from the sealed prekey file, so it is never accepted twice.
@Suite struct ConsumedPreKeyTests {
    @Test func aUsedPrekeyLeavesTheCredentialStore() async throws {
        let files = try EncryptedCredentialStore(directory: try makeTemporaryDirectory() + "/auth", masterKey: .generate())
        let credentials = TenantCredentialStore(tenant: try TenantName("acme"), files: files)
        let device = try DeviceCredentials.generate()
        let preKeys = (1...5).map { PreKey(id: UInt32($0), keyPair: .generate()) }
        try await credentials.save(device)
        try await credentials.savePreKeys(preKeys)

        // Our side, built from what the credential store holds; a peer starts a session with prekey 3.
        let ours = try SignalProtocol(
            records: SignalRecords(
                identity: device.identityKey, registrationID: device.registrationID, signedPreKey: device.signedPreKey,
                preKeys: Dictionary(uniqueKeysWithValues: try await credentials.loadPreKeys().map { ($0.id, $0.keyPair) })))
        let peerIdentity = Curve25519KeyPair.generate()
        let peer = try SignalProtocol(
            records: SignalRecords(
                identity: peerIdentity, registrationID: 7, signedPreKey: try SignedPreKey.generate(id: 1, identityKey: peerIdentity)))
        let us = SignalAddress(name: "15550000001", deviceID: 2)
        try peer.startSession(
            with: us,
            bundle: SignalPreKeyBundle(
                registrationID: device.registrationID, deviceID: 2, identityKey: device.identityKey.publicKey,
                signedPreKeyID: device.signedPreKey.id, signedPreKey: device.signedPreKey.keyPair.publicKey,
                signedPreKeySignature: device.signedPreKey.signature, preKey: (3, preKeys[2].keyPair.publicKey)))
        _ = try ours.decrypt(try peer.encrypt([1, 1], for: us), from: SignalAddress(name: "15550000009", deviceID: 0))
        #expect(ours.records.consumedPreKeyIDs == [3])

        try await credentials.removePreKeys(ours.records.consumedPreKeyIDs)
        #expect(try await credentials.loadPreKeys().map(\.id) == [1, 2, 4, 5])
        try await credentials.removePreKeys([3, 99])  // again, and an unknown id: nothing changes
        #expect(try await credentials.loadPreKeys().map(\.id) == [1, 2, 4, 5])
    }

    @Test("many tenants' writes share transactions with their events; a deleted tenant fails only its own write", arguments: Backend.available)
    func groupCommittedWritesAreDurableAndIsolated(_ backend: Backend) async throws {
        let store = try await backend.makeStore()
        let masterKey = MasterKey.generate()
        let writer = EventLogWriter(repository: store, logger: Logger(label: "test"))
        var stores: [SealedSignalStore] = []
        for index in 0..<20 {
            let name = try TenantName("tenant-\(index)")
            try await store.createTenant(Tenant(name: name, createdAt: Date(), mfaEnabled: false, instanceID: "i\(index)"), adminTokenHash: "x", otpSecret: nil)
            stores.append(SealedSignalStore(tenant: name, instanceID: "i\(index)", masterKey: masterKey, repository: store, writer: writer))
        }
        let ghost = SealedSignalStore(tenant: try TenantName("ghost"), instanceID: nil, masterKey: masterKey, repository: store, writer: writer)
        let address = SignalAddress(name: "15550000001", deviceID: 0)
        let results = await withTaskGroup(of: Bool.self) { group in
            for (index, tenantStore) in (stores + [ghost]).enumerated() {
                group.addTask {
                    do {
                        for round in 0..<5 {
                            let event = InboxEvent(type: "message", at: Date(), data: "{\"round\":\(round)}", dedupeKey: "message:M\(round)")
                            try await tenantStore.save([.session(address): [UInt8(index), UInt8(round)]], with: round % 2 == 0 ? [event] : [])
                        }
                        return true
                    } catch { return false }
                }
            }
            var all: [Bool] = []
            for await result in group { all.append(result) }
            return all
        }
        #expect(results.filter { $0 }.count == 20 && results.filter { !$0 }.count == 1, "only the ghost tenant's write fails")
        for (index, tenantStore) in stores.enumerated() {
            #expect(try await tenantStore.load([.session(address)])[.session(address)] == [UInt8(index), 4], "the last write of each tenant is stored")
            let events = try await store.events(of: try TenantName("tenant-\(index)"), after: 0, limit: 10)
            #expect(events.map(\.data) == [#"{"round":0}"#, #"{"round":2}"#, #"{"round":4}"#], "each tenant's events, in order")
        }
        try await store.close()
    }

    @Test("a received message's event and the Signal state that decrypted it are stored together or not at all", arguments: Backend.available)
    func aMessageAndItsSignalStateAreStoredTogether(_ backend: Backend) async throws {
        let store = try await backend.makeStore()
        let writer = EventLogWriter(repository: store, logger: Logger(label: "test"))
        let peer = SignalAddress(name: "15550000001", deviceID: 0)
        func message(_ id: String) -> InboxEvent { InboxEvent(type: "message", at: Date(), data: #"{"id":"\#(id)"}"#, dedupeKey: "message:\(id)") }
        // Through the process's group writer, and straight to the database (tools): the same guarantee.
        for (index, writer) in [writer, nil].enumerated() {
            let tenant = try TenantName("tenant-\(index)")
            try await store.createTenant(Tenant(name: tenant, createdAt: Date(), mfaEnabled: false, instanceID: "i1"), adminTokenHash: "x", otpSecret: nil)
            let start = Date()
            let lease = try #require(try await store.acquireLease(for: tenant, nodeID: "node-a", ttl: .seconds(1), now: start))
            let fences = LeaseFences(nodeID: "node-a")
            fences.tookLease(of: tenant, nodeID: "node-a", generation: lease.generation)
            let signal = SealedSignalStore(
                tenant: tenant, instanceID: "i1", masterKey: MasterKey.generate(), repository: store, writer: writer, fences: fences)
            try await signal.save([.session(peer): [1]], with: [message("M1")])
            #expect(try await store.events(of: tenant, after: 0, limit: 10).map(\.data) == [#"{"id":"M1"}"#])
            #expect(try await signal.load([.session(peer)])[.session(peer)] == [1])

            // Another node takes the session over before the next message commits: neither its event nor its state lands
            // (the new owner gets the message again and decrypts it from the state before it).
            _ = try #require(try await store.acquireLease(for: tenant, nodeID: "node-b", ttl: .seconds(30), now: start.addingTimeInterval(5)))
            await #expect(throws: RepositoryError.self) { try await signal.save([.session(peer): [2], .identity(peer): [3]], with: [message("M2")]) }
            #expect(try await store.events(of: tenant, after: 0, limit: 10).map(\.data) == [#"{"id":"M1"}"#], "no event without its state")
            #expect(try await signal.load([.session(peer), .identity(peer)]) == [.session(peer): [1]], "no state without its event")
        }
        try await store.close()
    }
}
