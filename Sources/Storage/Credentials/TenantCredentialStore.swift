import Foundation
import Tenancy
import WhatsApp

/// The WhatsApp credential port for one tenant: sealed `device.json` and `prekeys.bin`, as files or database rows.
public struct TenantCredentialStore: CredentialStore {
    /// The file that holds the companion's credentials.
    public static let fileName = "device.json"

    private let tenant: TenantName
    private let files: any CredentialFiles
    /// Reads the tenant's row, for its instance id; nil: keys from the name alone (tests, tools without a database).
    private let tenantRow: (@Sendable () async throws -> Tenant?)?

    /// A store keyed by the tenant's name alone, as for tenants created before instance ids.
    public init(tenant: TenantName, files: any CredentialFiles) {
        self.tenant = tenant
        self.files = files
        self.tenantRow = nil
    }

    /// A store keyed by the tenant's current row: files of an earlier tenant of the same name do not open.
    public init(tenant: TenantName, files: any CredentialFiles, tenantRow: @escaping @Sendable () async throws -> Tenant?) {
        self.tenant = tenant
        self.files = files
        self.tenantRow = tenantRow
    }

    /// The instance id the files are sealed under; throws if the tenant was deleted meanwhile.
    private func instanceID() async throws -> String? {
        guard let tenantRow else { return nil }
        guard let row = try await tenantRow() else {
            throw CredentialStoreError(.tenantGone, "tenant '\(tenant)' no longer exists; its credentials are not used")
        }
        return row.instanceID
    }

    public func load() async throws -> DeviceCredentials? {
        guard let bytes = try await files.read(file: Self.fileName, tenant: tenant, instanceID: try await instanceID()) else { return nil }
        do {
            return try JSONDecoder().decode(DeviceCredentials.self, from: Data(bytes))
        } catch {
            throw CredentialStoreError(.corrupt, "credential file '\(Self.fileName)' of tenant '\(tenant)' does not hold device credentials")
        }
    }

    public func save(_ credentials: DeviceCredentials) async throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try await files.write(Array(try encoder.encode(credentials)), file: Self.fileName, tenant: tenant, instanceID: try await instanceID())
    }

    /// Prekeys kept: the newest ones; older ones were consumed by contacts long ago or will never be.
    public static let retainedPreKeys = 4096
    /// The file that holds the one-time prekeys (``PreKey/serialize(_:)``'s compact records).
    public static let preKeyFileName = "prekeys.bin"
    /// Where earlier versions kept the prekeys, as JSON; read when ``preKeyFileName`` is absent, removed on the next save.
    static let legacyPreKeyFileName = "prekeys.json"

    public func loadPreKeys() async throws -> [PreKey] {
        try await storedPreKeys().preKeys
    }

    /// The stored prekeys, and whether they came from the legacy JSON file (to be removed on the next write).
    private func storedPreKeys() async throws -> (preKeys: [PreKey], legacy: Bool) {
        let instance = try await instanceID()
        if let bytes = try await files.read(file: Self.preKeyFileName, tenant: tenant, instanceID: instance) {
            do { return (try PreKey.deserialize(bytes), false) } catch {
                throw CredentialStoreError(.corrupt, "credential file '\(Self.preKeyFileName)' of tenant '\(tenant)': \(error)")
            }
        }
        guard let legacy = try await files.read(file: Self.legacyPreKeyFileName, tenant: tenant, instanceID: instance) else { return ([], false) }
        do {
            return (try JSONDecoder().decode([PreKey].self, from: Data(legacy)), true)
        } catch {
            throw CredentialStoreError(.corrupt, "credential file '\(Self.legacyPreKeyFileName)' of tenant '\(tenant)' does not hold prekeys")
        }
    }

    public func loadPreKeys(ids: Set<UInt32>) async throws -> [PreKey] {
        guard !ids.isEmpty else { return [] }
        guard let bytes = try await files.read(file: Self.preKeyFileName, tenant: tenant, instanceID: try await instanceID()) else {
            return try await loadPreKeys().filter { ids.contains($0.id) }  // the legacy JSON file
        }
        do { return try PreKey.deserialize(bytes, only: ids) } catch {
            throw CredentialStoreError(.corrupt, "credential file '\(Self.preKeyFileName)' of tenant '\(tenant)': \(error)")
        }
    }

    public func savePreKeys(_ preKeys: [PreKey]) async throws {
        let stored = try await storedPreKeys()
        try await writePreKeys(Array((stored.preKeys + preKeys).suffix(Self.retainedPreKeys)), removingLegacy: stored.legacy)
    }

    public func removePreKeys(_ ids: Set<UInt32>) async throws {
        guard !ids.isEmpty else { return }
        let stored = try await storedPreKeys()
        let kept = stored.preKeys.filter { !ids.contains($0.id) }
        guard kept.count != stored.preKeys.count else { return }
        try await writePreKeys(kept, removingLegacy: stored.legacy)
    }

    private func writePreKeys(_ preKeys: [PreKey], removingLegacy: Bool) async throws {
        try await files.write(PreKey.serialize(preKeys), file: Self.preKeyFileName, tenant: tenant, instanceID: try await instanceID())
        if removingLegacy { try await files.delete(file: Self.legacyPreKeyFileName, tenant: tenant) }
    }

    public func wipe() async throws {
        try await files.wipe(tenant: tenant)
    }
}
