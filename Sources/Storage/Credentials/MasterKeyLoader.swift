import Foundation
import Tenancy

#if canImport(Glibc)
import Glibc
#endif

/// Finds the master key: `WAHOST_MASTER_KEY` (base64, 32 bytes), else `<auth>/.master-key`, created 0600 on first start.
public enum MasterKeyLoader {
    /// The name of the key file inside the auth directory.
    public static let fileName = ".master-key"

    /// Loads or creates the master key; `environmentValue` is the content of `WAHOST_MASTER_KEY`, if set.
    public static func load(environmentValue: String?, authDirectory: String) throws(MasterKeyError) -> MasterKey {
        if let environmentValue, !environmentValue.isEmpty {
            do { return try MasterKey(base64: environmentValue) } catch {
                throw MasterKeyError("WAHOST_MASTER_KEY: \(error.description)")
            }
        }
        do { try EncryptedCredentialStore.makePrivateDirectory(authDirectory) } catch {
            throw MasterKeyError(error.description)
        }
        let path = authDirectory + "/" + fileName
        let key = MasterKey.generate()
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        if fd >= 0 {
            defer { close(fd) }
            do {
                try EncryptedCredentialStore.writeAll(fd, Array((key.base64 + "\n").utf8), file: fileName)
                guard fsync(fd) == 0 else { throw MasterKeyError("fsync \(path) failed") }
                try EncryptedCredentialStore.syncDirectory(authDirectory)
            } catch let error as MasterKeyError {
                unlink(path)
                throw error
            } catch {
                unlink(path)
                throw MasterKeyError("cannot write \(path): \(error)")
            }
            return key
        }
        guard errno == EEXIST else { throw MasterKeyError("cannot create \(path): \(String(cString: strerror(errno)))") }
        var info = stat()
        if stat(path, &info) == 0, info.st_mode & 0o077 != 0 {
            throw MasterKeyError("\(path) is readable by other users (mode \(String(info.st_mode & 0o777, radix: 8))); chmod 600 it")
        }
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw MasterKeyError("cannot read \(path)")
        }
        do { return try MasterKey(base64: text) } catch { throw MasterKeyError("\(path): \(error.description)") }
    }
}
