import Tenancy

/// A tenant's sealed credential files: files under `auth/<tenant>/`, or rows of the system database.
///
/// Both keep the same sealed bytes (``CredentialSealer``), so a record moves between them as it is.
public protocol CredentialFiles: Sendable {
    /// Opens `file` of `tenant`; nil if it does not exist; throws if it does not open under this tenant and name.
    func read(file: String, tenant: TenantName, instanceID: String?) async throws -> [UInt8]?
    /// Seals `contents` and durably replaces `file`.
    func write(_ contents: [UInt8], file: String, tenant: TenantName, instanceID: String?) async throws
    /// Removes one file if it exists.
    func delete(file: String, tenant: TenantName) async throws
    /// Removes every file of `tenant`.
    func wipe(tenant: TenantName) async throws
    /// The names of `tenant`'s files, sorted.
    func fileNames(of tenant: TenantName) async throws -> [String]
    /// The sealed bytes of `file` as stored, unopened; nil if it does not exist.
    func sealedBytes(file: String, tenant: TenantName) async throws -> [UInt8]?
    /// Durably stores already-sealed bytes as `file`.
    func storeSealed(_ sealed: [UInt8], file: String, tenant: TenantName) async throws
}

extension EncryptedCredentialStore: CredentialFiles {
    public func fileNames(of tenant: TenantName) async throws -> [String] { files(tenant: tenant) }
}
