import App
import Foundation
import Tenancy

/// The file `serve --init-secrets-file` writes the first start's secrets to: created 0600 with O_EXCL, JSON, never on stdout.
struct FirstStartSecretsFile {
    /// Where the file is.
    let path: String
    private let descriptor: Int32

    /// Creates the empty file (0600); fails if it exists, so secrets never overwrite or mix with an older file.
    static func create(path: String) throws -> FirstStartSecretsFile {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw SecretsFileError("cannot create \(path): \(String(cString: strerror(errno)))") }
        return FirstStartSecretsFile(path: path, descriptor: descriptor)
    }

    /// Writes the secrets as one JSON object, fsyncs and closes the file.
    func write(_ first: FirstStart, dashboardURL: String) throws {
        var object: [String: String] = [
            "tenant": first.tenant.tenant.name.rawValue, "admin_token": first.tenant.adminToken.text, "dashboard": dashboardURL,
        ]
        object["otp_secret"] = first.tenant.otp?.secretBase32
        object["otpauth_uri"] = first.tenant.otp?.provisioningURI
        object["operator_token"] = first.operatorToken?.text
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted]) + Data("\n".utf8)
        defer { close(descriptor) }
        let written = data.withUnsafeBytes { Foundation.write(descriptor, $0.baseAddress, $0.count) }
        guard written == data.count, fsync(descriptor) == 0 else {
            throw SecretsFileError("cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// Closes and removes the empty file when this start created nothing.
    func discard() {
        close(descriptor)
        unlink(path)
    }
}

/// The secrets file could not be created or written.
struct SecretsFileError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
