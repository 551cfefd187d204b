import Crypto
import Foundation
import Tenancy

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Per-tenant credential files under `auth/<tenant>/`, each sealed with AES-256-GCM.
///
/// Key: HKDF-SHA256(master key, tenant). Associated data: tenant and file name, so a file copied into another
/// tenant's directory or renamed fails to open. Writes are atomic (temp file, fsync, rename, fsync directory);
/// directories are 0700 and files 0600.
public final class EncryptedCredentialStore: Sendable {
    /// The `auth/` directory.
    public let directory: String
    private let sealer: CredentialSealer
    private let beforeRename: (@Sendable (String) throws -> Void)?

    /// Opens the store rooted at `directory` (created 0700 if missing) and removes temp files left by a crash.
    public convenience init(directory: String, masterKey: MasterKey) throws(CredentialStoreError) {
        try self.init(directory: directory, masterKey: masterKey, beforeRename: nil)
    }

    /// Test seam: `beforeRename` runs after the temp file is durable and before it replaces the real one.
    package init(directory: String, masterKey: MasterKey, beforeRename: (@Sendable (String) throws -> Void)?) throws(CredentialStoreError) {
        self.directory = directory
        self.sealer = CredentialSealer(masterKey: masterKey)
        self.beforeRename = beforeRename
        try Self.makePrivateDirectory(directory)
        try removeStaleTemporaryFiles()
    }

    /// Seals `contents` and atomically replaces `file` of `tenant`; `instanceID` (nil only for older tenants) binds it to this tenant.
    public func write(_ contents: [UInt8], file: String, tenant: TenantName, instanceID: String? = nil) throws(CredentialStoreError) {
        try Self.validate(fileName: file)
        try storeSealed(try sealer.seal(contents, file: file, tenant: tenant, instanceID: instanceID), file: file, tenant: tenant)
    }

    /// Atomically replaces `file` of `tenant` with already-sealed bytes.
    public func storeSealed(_ sealed: [UInt8], file: String, tenant: TenantName) throws(CredentialStoreError) {
        try Self.validate(fileName: file)
        let tenantDirectory = try ensureTenantDirectory(tenant)
        let finalPath = tenantDirectory + "/" + file
        let temporaryPath = tenantDirectory + "/." + file + ".tmp-" + Self.randomSuffix()
        let fd = open(temporaryPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw CredentialStoreError.io("create \(file)") }
        var ok = false
        defer {
            if !ok { unlink(temporaryPath) }
        }
        do {
            try Self.writeAll(fd, sealed, file: file)
            guard fsync(fd) == 0 else { close(fd); throw CredentialStoreError.io("fsync \(file)") }
            guard close(fd) == 0 else { throw CredentialStoreError.io("close \(file)") }
            if let beforeRename {
                do { try beforeRename(finalPath) } catch { throw CredentialStoreError(.io, "interrupted before rename: \(error)") }
            }
            guard rename(temporaryPath, finalPath) == 0 else { throw CredentialStoreError.io("rename \(file)") }
            ok = true
            try Self.syncDirectory(tenantDirectory)
        }
    }

    /// Opens `file` of `tenant`; nil if it does not exist; throws if it was tampered with, truncated or moved.
    public func read(file: String, tenant: TenantName, instanceID: String? = nil) throws(CredentialStoreError) -> [UInt8]? {
        guard let sealed = try sealedBytes(file: file, tenant: tenant) else { return nil }
        return try sealer.open(sealed, file: file, tenant: tenant, instanceID: instanceID)
    }

    /// The sealed bytes of `file` as stored; nil if it does not exist.
    public func sealedBytes(file: String, tenant: TenantName) throws(CredentialStoreError) -> [UInt8]? {
        try Self.validate(fileName: file)
        let path = tenantPath(tenant) + "/" + file
        guard let data = FileManager.default.contents(atPath: path) else {
            if FileManager.default.fileExists(atPath: path) { throw CredentialStoreError.io("read \(file)") }
            return nil
        }
        return Array(data)
    }

    /// Removes one file if it exists.
    public func delete(file: String, tenant: TenantName) throws(CredentialStoreError) {
        try Self.validate(fileName: file)
        let path = tenantPath(tenant) + "/" + file
        guard unlink(path) == 0 else {
            if errno == ENOENT { return }
            throw CredentialStoreError.io("delete \(file)")
        }
        try? Self.syncDirectory(tenantPath(tenant))
    }

    /// The credential files stored for `tenant`, sorted.
    public func files(tenant: TenantName) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: tenantPath(tenant))) ?? []
        return names.filter { !$0.hasPrefix(".") }.sorted()
    }

    /// True if `auth/<tenant>/` exists and holds anything at all (files of an earlier tenant, temp files, directories).
    public func holdsFiles(tenant: TenantName) -> Bool {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: tenantPath(tenant)) else { return false }
        return !names.isEmpty
    }

    /// Overwrites every file of `tenant` with zeros, unlinks it, and removes the directory.
    public func wipe(tenant: TenantName) throws(CredentialStoreError) {
        let path = tenantPath(tenant)
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: path) else { return }
        for name in names {
            let filePath = path + "/" + name
            let fd = open(filePath, O_WRONLY | O_CLOEXEC | O_NOFOLLOW)
            if fd >= 0 {
                var size = stat()
                if fstat(fd, &size) == 0, size.st_size > 0 {
                    try? Self.writeAll(fd, [UInt8](repeating: 0, count: Int(size.st_size)), file: name)
                    _ = fsync(fd)
                }
                close(fd)
            }
            guard unlink(filePath) == 0 || errno == ENOENT else { throw CredentialStoreError.io("wipe \(name)") }
        }
        guard rmdir(path) == 0 || errno == ENOENT else { throw CredentialStoreError.io("remove directory of \(tenant)") }
        try Self.syncDirectory(directory)
    }

    // MARK: Internals

    private func tenantPath(_ tenant: TenantName) -> String { directory + "/" + tenant.rawValue }

    private func ensureTenantDirectory(_ tenant: TenantName) throws(CredentialStoreError) -> String {
        let path = tenantPath(tenant)
        try Self.makePrivateDirectory(path)
        return path
    }

    private func removeStaleTemporaryFiles() throws(CredentialStoreError) {
        let tenants = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        for tenant in tenants where !tenant.hasPrefix(".") {
            let path = directory + "/" + tenant
            for name in (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [] where name.hasPrefix(".") && name.contains(".tmp-") {
                unlink(path + "/" + name)
            }
        }
    }

    static func validate(fileName: String) throws(CredentialStoreError) {
        let valid = !fileName.isEmpty && fileName.utf8.count <= 64 && !fileName.hasPrefix(".")
            && fileName.utf8.allSatisfy { byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x61 && byte <= 0x7A) || byte == UInt8(ascii: "-")
                    || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".")
            }
        guard valid else { throw CredentialStoreError(.invalidFileName, "invalid credential file name") }
    }

    static func makePrivateDirectory(_ path: String) throws(CredentialStoreError) {
        if mkdir(path, 0o700) != 0 && errno != EEXIST { throw CredentialStoreError.io("create directory \(path)") }
        guard chmod(path, 0o700) == 0 else { throw CredentialStoreError.io("chmod directory \(path)") }
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8], file: String) throws(CredentialStoreError) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { buffer in Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset) }
            if written < 0 {
                if errno == EINTR { continue }
                throw CredentialStoreError.io("write \(file)")
            }
            offset += written
        }
    }

    static func syncDirectory(_ path: String) throws(CredentialStoreError) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw CredentialStoreError.io("open directory \(path)") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw CredentialStoreError.io("fsync directory \(path)") }
    }

    private static func randomSuffix() -> String {
        SecureRandom.bytes(8).map { String($0, radix: 16) }.joined()
    }
}

/// A credential file could not be stored or opened.
public struct CredentialStoreError: Error, CustomStringConvertible {
    /// What kind of failure.
    public enum Kind: Sendable, Equatable {
        /// The file name is not `[a-z0-9._-]{1,64}` or starts with a dot.
        case invalidFileName
        /// The file is too short or lacks the wahost header.
        case corrupt
        /// AES-GCM refused the file: changed, truncated, moved or under another key.
        case authenticationFailed
        /// The file system refused an operation.
        case io
        /// The tenant these credentials belong to no longer exists.
        case tenantGone
        /// This node no longer holds the tenant's session lease; another node owns its credentials now.
        case fenced
    }

    /// What kind of failure.
    public let kind: Kind
    /// A message without secrets.
    public let description: String

    init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }

    static func io(_ operation: String) -> CredentialStoreError {
        CredentialStoreError(.io, "\(operation) failed: \(String(cString: strerror(errno)))")
    }
}
