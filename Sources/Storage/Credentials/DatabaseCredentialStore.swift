import Tenancy

/// Credential files as rows of the system database (`sealed_records`, kind `credential-file`), sealed exactly as the
/// files under `auth/` are; every write carries this node's lease on the tenant as a fence, so a node that lost the
/// session cannot overwrite what the new owner stored.
public struct DatabaseCredentialStore: CredentialFiles {
    /// The `sealed_records` kind credential files are kept under.
    public static let kind = "credential-file"

    private let repository: any SealedRecordRepository
    private let sealer: CredentialSealer
    /// nil: writes are not fenced (`migrate-credentials`, which runs with the cluster stopped).
    private let fences: LeaseFences?

    public init(repository: any SealedRecordRepository, masterKey: MasterKey, fences: LeaseFences?) {
        self.repository = repository
        self.sealer = CredentialSealer(masterKey: masterKey)
        self.fences = fences
    }

    public func read(file: String, tenant: TenantName, instanceID: String?) async throws -> [UInt8]? {
        guard let sealed = try await sealedBytes(file: file, tenant: tenant) else { return nil }
        return try sealer.open(sealed, file: file, tenant: tenant, instanceID: instanceID)
    }

    public func write(_ contents: [UInt8], file: String, tenant: TenantName, instanceID: String?) async throws {
        try EncryptedCredentialStore.validate(fileName: file)
        try await storeSealed(try sealer.seal(contents, file: file, tenant: tenant, instanceID: instanceID), file: file, tenant: tenant)
    }

    public func delete(file: String, tenant: TenantName) async throws {
        try EncryptedCredentialStore.validate(fileName: file)
        try await apply([SealedRecordChange(kind: Self.kind, key: file, sealed: nil)], tenant: tenant, fence: fences?.fence(for: tenant))
    }

    public func wipe(tenant: TenantName) async throws {
        let names = try await fileNames(of: tenant)
        guard !names.isEmpty else { return }
        try await apply(names.map { SealedRecordChange(kind: Self.kind, key: $0, sealed: nil) }, tenant: tenant, fence: fences?.wipeFence(for: tenant))
    }

    public func fileNames(of tenant: TenantName) async throws -> [String] {
        try await repository.sealedRecordKeys(of: tenant, kind: Self.kind)
    }

    public func sealedBytes(file: String, tenant: TenantName) async throws -> [UInt8]? {
        try EncryptedCredentialStore.validate(fileName: file)
        return try await repository.sealedRecords(of: tenant, kind: Self.kind, keys: [file])[file]
    }

    public func storeSealed(_ sealed: [UInt8], file: String, tenant: TenantName) async throws {
        try EncryptedCredentialStore.validate(fileName: file)
        try await apply([SealedRecordChange(kind: Self.kind, key: file, sealed: sealed)], tenant: tenant, fence: fences?.fence(for: tenant))
    }

    private func apply(_ changes: [SealedRecordChange], tenant: TenantName, fence: LeaseFence?) async throws {
        do { try await repository.writeSealedRecords([SealedRecordWrite(tenant: tenant, changes: changes, fence: fence)]) } catch {
            switch error.kind {
            case .fenced: throw CredentialStoreError(.fenced, error.message)
            case .notFound: throw CredentialStoreError(.tenantGone, "tenant '\(tenant)' no longer exists; its credentials are not stored")
            default: throw CredentialStoreError(.io, "the database refused credential record of tenant '\(tenant)': \(error.message)")
            }
        }
    }
}
