import Foundation
import Tenancy
import WhatsApp

/// The WhatsApp credential port for one tenant, kept as one sealed JSON file in `auth/<tenant>/device.json`.
public struct TenantCredentialStore: CredentialStore {
    /// The file that holds the companion's credentials.
    public static let fileName = "device.json"

    private let tenant: TenantName
    private let files: EncryptedCredentialStore

    public init(tenant: TenantName, files: EncryptedCredentialStore) {
        self.tenant = tenant
        self.files = files
    }

    public func load() async throws -> DeviceCredentials? {
        guard let bytes = try files.read(file: Self.fileName, tenant: tenant) else { return nil }
        do {
            return try JSONDecoder().decode(DeviceCredentials.self, from: Data(bytes))
        } catch {
            throw CredentialStoreError(.corrupt, "credential file '\(Self.fileName)' of tenant '\(tenant)' does not hold device credentials")
        }
    }

    public func save(_ credentials: DeviceCredentials) async throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try files.write(Array(try encoder.encode(credentials)), file: Self.fileName, tenant: tenant)
    }

    /// Prekeys kept: the newest ones; older ones were consumed by contacts long ago or will never be.
    public static let retainedPreKeys = 4096
    /// The file that holds the one-time prekeys (``PreKey/serialize(_:)``'s compact records).
    public static let preKeyFileName = "prekeys.bin"
    /// Where earlier versions kept the prekeys, as JSON; read when ``preKeyFileName`` is absent, removed on the next save.
    static let legacyPreKeyFileName = "prekeys.json"

    public func loadPreKeys() throws -> [PreKey] {
        if let bytes = try files.read(file: Self.preKeyFileName, tenant: tenant) {
            do { return try PreKey.deserialize(bytes) } catch {
                throw CredentialStoreError(.corrupt, "credential file '\(Self.preKeyFileName)' of tenant '\(tenant)': \(error)")
            }
        }
        guard let legacy = try files.read(file: Self.legacyPreKeyFileName, tenant: tenant) else { return [] }
        do {
            return try JSONDecoder().decode([PreKey].self, from: Data(legacy))
        } catch {
            throw CredentialStoreError(.corrupt, "credential file '\(Self.legacyPreKeyFileName)' of tenant '\(tenant)' does not hold prekeys")
        }
    }

    public func savePreKeys(_ preKeys: [PreKey]) async throws {
        let kept = Array((try loadPreKeys() + preKeys).suffix(Self.retainedPreKeys))
        try files.write(PreKey.serialize(kept), file: Self.preKeyFileName, tenant: tenant)
        try files.delete(file: Self.legacyPreKeyFileName, tenant: tenant)
    }

    public func wipe() async throws {
        try files.wipe(tenant: tenant)
    }
}
