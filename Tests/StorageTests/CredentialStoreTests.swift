import Foundation
import Storage
import Tenancy
import TestSupport
import Testing
import WhatsApp

@Suite struct CredentialStoreTests {
    let acme = try! TenantName("acme")
    let beta = try! TenantName("beta")
    let secret = Array("-----noise-private-key-0123456789abcdef-----".utf8)

    func makeStore(beforeRename: (@Sendable (String) throws -> Void)? = nil) throws -> (EncryptedCredentialStore, String) {
        let directory = try makeTemporaryDirectory() + "/auth"
        let store = try EncryptedCredentialStore(directory: directory, masterKey: .generate(), beforeRename: beforeRename)
        return (store, directory)
    }

    @Test func roundTripsWithPrivatePermissions() throws {
        let (store, directory) = try makeStore()
        try store.write(secret, file: "creds.json", tenant: acme)
        #expect(try store.read(file: "creds.json", tenant: acme) == secret)
        #expect(try store.read(file: "missing.json", tenant: acme) == nil)
        #expect(store.files(tenant: acme) == ["creds.json"])
        let attributes = try FileManager.default.attributesOfItem(atPath: directory + "/acme/creds.json")
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        let directoryAttributes = try FileManager.default.attributesOfItem(atPath: directory + "/acme")
        #expect((directoryAttributes[.posixPermissions] as? Int) == 0o700)
        let rootAttributes = try FileManager.default.attributesOfItem(atPath: directory)
        #expect((rootAttributes[.posixPermissions] as? Int) == 0o700)
    }

    @Test func preKeysAreKeptSealedAndCompactAndLegacyJSONIsMigrated() async throws {
        let (files, directory) = try makeStore()
        let store = TenantCredentialStore(tenant: acme, files: files)
        #expect(try await store.loadPreKeys() == [])
        let first = PreKey.generate(count: 812, firstID: 1)
        try await store.savePreKeys(first)
        #expect(try await store.loadPreKeys() == first)
        #expect(files.files(tenant: acme) == [TenantCredentialStore.preKeyFileName])
        let raw = try #require(FileManager.default.contents(atPath: directory + "/acme/" + TenantCredentialStore.preKeyFileName))
        #expect(raw.range(of: Data(first[0].keyPair.privateKey)) == nil, "sealed")

        // A tenant stored by an earlier version has prekeys.json: it is read, and replaced on the next save.
        let legacy = PreKey.generate(count: 5, firstID: 1)
        try files.write(Array(try JSONEncoder().encode(legacy)), file: "prekeys.json", tenant: beta)
        let betaStore = TenantCredentialStore(tenant: beta, files: files)
        #expect(try await betaStore.loadPreKeys() == legacy)
        let refill = PreKey.generate(count: 3, firstID: 6)
        try await betaStore.savePreKeys(refill)
        #expect(try await betaStore.loadPreKeys() == legacy + refill)
        #expect(files.files(tenant: beta) == [TenantCredentialStore.preKeyFileName])

        // A damaged record is reported as corrupt, not silently dropped.
        try files.write([9, 9, 9], file: TenantCredentialStore.preKeyFileName, tenant: beta)
        await #expect(throws: CredentialStoreError.self) { try await betaStore.loadPreKeys() }
    }

    @Test func filesHoldNoPlaintext() throws {
        let (store, directory) = try makeStore()
        try store.write(secret, file: "creds.json", tenant: acme)
        let raw = try #require(FileManager.default.contents(atPath: directory + "/acme/creds.json"))
        #expect(raw.range(of: Data(secret)) == nil)
        #expect(raw.range(of: Data("noise-private-key".utf8)) == nil)
    }

    @Test func bitFlipsAnywhereFailToOpen() throws {
        let (store, directory) = try makeStore()
        try store.write(secret, file: "creds.json", tenant: acme)
        let path = directory + "/acme/creds.json"
        let original = try #require(FileManager.default.contents(atPath: path))
        for index in stride(from: 0, to: original.count, by: 3) {
            var tampered = original
            tampered[index] ^= 0x01
            try tampered.write(to: URL(fileURLWithPath: path))
            #expect(throws: CredentialStoreError.self) { try store.read(file: "creds.json", tenant: acme) }
        }
    }

    @Test func truncatedFilesFailToOpen() throws {
        let (store, directory) = try makeStore()
        try store.write(secret, file: "creds.json", tenant: acme)
        let path = directory + "/acme/creds.json"
        let original = try #require(FileManager.default.contents(atPath: path))
        for length in [0, 3, 5, 17, original.count - 1] {
            try original.prefix(length).write(to: URL(fileURLWithPath: path))
            do {
                _ = try store.read(file: "creds.json", tenant: acme)
                Issue.record("truncated to \(length) bytes but opened")
            } catch {
                #expect(error.kind == .corrupt || error.kind == .authenticationFailed)
                #expect(error.description.contains("creds.json"))
            }
        }
    }

    @Test func aFileMovedToAnotherTenantOrRenamedFailsToOpen() throws {
        let (store, directory) = try makeStore()
        try store.write(secret, file: "creds.json", tenant: acme)
        try store.write(Array("beta's own".utf8), file: "other.json", tenant: beta)
        try FileManager.default.copyItem(atPath: directory + "/acme/creds.json", toPath: directory + "/beta/creds.json")
        do {
            _ = try store.read(file: "creds.json", tenant: beta)
            Issue.record("swapped file opened")
        } catch {
            #expect(error.kind == .authenticationFailed)
        }
        try FileManager.default.copyItem(atPath: directory + "/acme/creds.json", toPath: directory + "/acme/renamed.json")
        #expect(throws: CredentialStoreError.self) { try store.read(file: "renamed.json", tenant: acme) }
    }

    @Test func anotherMasterKeyCannotOpen() throws {
        let (store, directory) = try makeStore()
        try store.write(secret, file: "creds.json", tenant: acme)
        let other = try EncryptedCredentialStore(directory: directory, masterKey: .generate())
        #expect(throws: CredentialStoreError.self) { try other.read(file: "creds.json", tenant: acme) }
    }

    @Test func aCrashBeforeRenameLeavesTheOldFileIntact() throws {
        struct SimulatedCrash: Error {}
        let crash = LockedFlag()
        let (store, directory) = try makeStore(beforeRename: { _ in if crash.value { throw SimulatedCrash() } })
        try store.write(Array("version 1".utf8), file: "creds.json", tenant: acme)
        crash.value = true
        #expect(throws: CredentialStoreError.self) { try store.write(Array("version 2".utf8), file: "creds.json", tenant: acme) }
        #expect(try store.read(file: "creds.json", tenant: acme) == Array("version 1".utf8))
        #expect(store.files(tenant: acme) == ["creds.json"])

        // A real crash leaves its temp file behind; it never shadows the real file and is swept at the next open.
        let leftover = directory + "/acme/.creds.json.tmp-deadbeef"
        try Data("half-written".utf8).write(to: URL(fileURLWithPath: leftover))
        #expect(try store.read(file: "creds.json", tenant: acme) == Array("version 1".utf8))
        _ = try EncryptedCredentialStore(directory: directory, masterKey: .generate())
        #expect(!FileManager.default.fileExists(atPath: leftover))
        crash.value = false
        try store.write(Array("version 2".utf8), file: "creds.json", tenant: acme)
        #expect(try store.read(file: "creds.json", tenant: acme) == Array("version 2".utf8))
    }

    @Test func wipeRemovesTheFilesForGood() throws {
        let (store, directory) = try makeStore()
        try store.write(secret, file: "creds.json", tenant: acme)
        try store.write(secret, file: "keys.bin", tenant: acme)
        try store.write(secret, file: "creds.json", tenant: beta)
        try store.wipe(tenant: acme)
        #expect(!FileManager.default.fileExists(atPath: directory + "/acme"))
        #expect(try store.read(file: "creds.json", tenant: acme) == nil)
        #expect(try store.read(file: "creds.json", tenant: beta) == secret, "other tenants untouched")
        try store.wipe(tenant: acme)  // idempotent
    }

    @Test(arguments: ["", ".hidden", "../escape", "a/b", "UPPER.json", String(repeating: "a", count: 65), "nul\u{0}"])
    func rejectsUnsafeFileNames(_ name: String) throws {
        let (store, _) = try makeStore()
        #expect(throws: CredentialStoreError.self) { try store.write([1], file: name, tenant: acme) }
        #expect(throws: CredentialStoreError.self) { try store.read(file: name, tenant: acme) }
    }
}

@Suite struct MasterKeyLoaderTests {
    @Test func createsTheKeyFileOnceWith0600() throws {
        let auth = try makeTemporaryDirectory() + "/auth"
        let first = try MasterKeyLoader.load(environmentValue: nil, authDirectory: auth)
        let path = auth + "/.master-key"
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        let second = try MasterKeyLoader.load(environmentValue: nil, authDirectory: auth)
        #expect(first.base64 == second.base64)
    }

    @Test func prefersTheEnvironmentAndValidatesIt() throws {
        let auth = try makeTemporaryDirectory() + "/auth"
        let key = MasterKey.generate()
        #expect(try MasterKeyLoader.load(environmentValue: key.base64, authDirectory: auth).base64 == key.base64)
        #expect(!FileManager.default.fileExists(atPath: auth + "/.master-key"))
        #expect(throws: MasterKeyError.self) { try MasterKeyLoader.load(environmentValue: "c2hvcnQ=", authDirectory: auth) }
    }

    @Test func refusesAWorldReadableKeyFile() throws {
        let auth = try makeTemporaryDirectory() + "/auth"
        _ = try MasterKeyLoader.load(environmentValue: nil, authDirectory: auth)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: auth + "/.master-key")
        #expect(throws: MasterKeyError.self) { try MasterKeyLoader.load(environmentValue: nil, authDirectory: auth) }
    }
}

final class LockedFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var flag = false
    var value: Bool {
        get { lock.withLock { flag } }
        set { lock.withLock { flag = newValue } }
    }
}
