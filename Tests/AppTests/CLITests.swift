import Foundation
import TestSupport
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The `wahost` executable built next to the test bundle.
enum WahostBinary {
    static var path: String {
        if let override = ProcessInfo.processInfo.environment["WAHOST_BINARY"] { return override }
        let bundleDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        return bundleDirectory.appendingPathComponent("wahost").path
    }

    static func run(_ arguments: [String], environment extra: [String: String] = [:]) throws -> ProcessResult {
        var environment = ProcessInfo.processInfo.environment
        environment.removeValue(forKey: "WAHOST_MASTER_KEY")
        environment.removeValue(forKey: "WAHOST_DATABASE_URL")
        environment.merge(extra) { $1 }
        return try runProcess(path, arguments, environment: environment)
    }

    /// `run` without blocking a cooperative thread (for async tests that also host servers or the simulator).
    static func runDetached(_ arguments: [String], environment extra: [String: String] = [:]) async throws -> ProcessResult {
        var environment = ProcessInfo.processInfo.environment
        environment.removeValue(forKey: "WAHOST_MASTER_KEY")
        environment.removeValue(forKey: "WAHOST_DATABASE_URL")
        environment.merge(extra) { $1 }
        return try await runProcessDetached(path, arguments, environment: environment)
    }

    static func json(_ result: ProcessResult) throws -> [String: Any] {
        let line = try #require(result.stdout.split(separator: "\n").first)
        return try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    }
}

@Suite struct CLITests {
    @Test func createPrintsOneJSONObjectWithTheSecrets() async throws {
        let dataDirectory = try makeTemporaryDirectory()
        let result = try await WahostBinary.runDetached(["tenant", "create", "acme", "--data-dir", dataDirectory])
        #expect(result.status == 0, "\(result.stderr)")
        let object = try WahostBinary.json(result)
        #expect(object["tenant"] as? String == "acme")
        let token = try #require(object["admin_token"] as? String)
        #expect(token.hasPrefix("wah_acme_"))
        let secret = try #require(object["otp_secret"] as? String)
        #expect(secret.count == 32)
        let uri = try #require(object["otpauth_uri"] as? String)
        #expect(uri.hasPrefix("otpauth://totp/wahost:acme?secret=\(secret)"))
        #expect(!result.stdout.contains("█"), "no terminal QR when stdout is not a TTY")
    }

    @Test func noMFAOmitsTheSecret() async throws {
        let dataDirectory = try makeTemporaryDirectory()
        let result = try await WahostBinary.runDetached(["tenant", "create", "beta", "--no-mfa", "--data-dir", dataDirectory])
        #expect(result.status == 0, "\(result.stderr)")
        let object = try WahostBinary.json(result)
        #expect(object["otp_secret"] == nil || object["otp_secret"] is NSNull)
    }

    @Test(arguments: ["", "../x", "Acme", "a_b", String(repeating: "a", count: 65), "-x"])
    func badNamesExitWithCode2AndAReason(_ name: String) async throws {
        let dataDirectory = try makeTemporaryDirectory()
        let result = try await WahostBinary.runDetached(["tenant", "create", "--data-dir", dataDirectory, "--", name])
        #expect(result.status == 2, "stdout: \(result.stdout) stderr: \(result.stderr)")
        #expect(result.stderr.contains("invalid tenant name"))
        #expect(result.stdout.isEmpty)
    }

    @Test func duplicatesExitWithCode1() async throws {
        let dataDirectory = try makeTemporaryDirectory()
        #expect(try await WahostBinary.runDetached(["tenant", "create", "acme", "--data-dir", dataDirectory]).status == 0)
        let again = try await WahostBinary.runDetached(["tenant", "create", "acme", "--data-dir", dataDirectory])
        #expect(again.status == 1)
        #expect(again.stderr.contains("already exists"))
    }

    @Test func listRotateResetDelete() async throws {
        let dataDirectory = try makeTemporaryDirectory()
        let created = try WahostBinary.json(try await WahostBinary.runDetached(["tenant", "create", "acme", "--data-dir", dataDirectory]))
        _ = try await WahostBinary.runDetached(["tenant", "create", "beta", "--no-mfa", "--data-dir", dataDirectory])
        let list = try await WahostBinary.runDetached(["tenant", "list", "--data-dir", dataDirectory])
        let entries = try #require(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]])
        #expect(entries.map { $0["tenant"] as? String } == ["acme", "beta"])
        #expect(entries.map { $0["mfa"] as? Bool } == [true, false])

        let rotated = try WahostBinary.json(try await WahostBinary.runDetached(["tenant", "rotate-token", "acme", "--data-dir", dataDirectory]))
        #expect((rotated["admin_token"] as? String)?.hasPrefix("wah_acme_") == true)
        #expect(rotated["admin_token"] as? String != created["admin_token"] as? String)

        let reset = try WahostBinary.json(try await WahostBinary.runDetached(["tenant", "reset-otp", "beta", "--data-dir", dataDirectory]))
        #expect((reset["otp_secret"] as? String)?.count == 32)

        #expect(try await WahostBinary.runDetached(["tenant", "delete", "beta", "--data-dir", dataDirectory]).status == 0)
        let missing = try await WahostBinary.runDetached(["tenant", "delete", "beta", "--data-dir", dataDirectory])
        #expect(missing.status == 1 && missing.stderr.contains("no tenant named 'beta'"))
        #expect(try await WahostBinary.runDetached(["tenant", "rotate-token", "ghost", "--data-dir", dataDirectory]).status == 1)
        #expect(try await WahostBinary.runDetached(["tenant", "rotate-token", "../ghost", "--data-dir", dataDirectory]).status == 2)
    }

    @Test func theDatabaseDumpHoldsNoSecretInClear() async throws {
        let dataDirectory = try makeTemporaryDirectory()
        let created = try WahostBinary.json(try await WahostBinary.runDetached(["tenant", "create", "acme", "--data-dir", dataDirectory]))
        let token = try #require(created["admin_token"] as? String)
        let secret = try #require(created["otp_secret"] as? String)
        let rawSecretHex = try #require(Base32Hex.hex(ofBase32: secret))
        let dump = try await runProcessDetached("/usr/bin/env", ["sqlite3", dataDirectory + "/system.db", ".dump"])
        #expect(dump.status == 0, "sqlite3 missing? \(dump.stderr)")
        #expect(dump.stdout.contains("CREATE TABLE tenants"))
        #expect(dump.stdout.contains("$argon2id$"))
        #expect(!dump.stdout.contains(token))
        #expect(!dump.stdout.contains(String(token.suffix(43))))
        #expect(!dump.stdout.contains(secret))
        #expect(!dump.stdout.uppercased().contains(rawSecretHex.uppercased()))
        let keyFile = try String(contentsOfFile: dataDirectory + "/auth/.master-key", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(!dump.stdout.contains(keyFile))
    }

    @Test(.enabled(if: ExternalTools.postgresEnabled)) func worksAgainstPostgreSQL() async throws {
        let server = try #require(ExternalTools.postgres)
        let dataDirectory = try makeTemporaryDirectory()
        let name = "t" + UUID().uuidString.lowercased().prefix(8)
        let url = "postgres://\(server.user)@\(server.host):\(server.port)/\(server.database)"
        let created = try await WahostBinary.runDetached(["tenant", "create", String(name), "--database-url", url, "--data-dir", dataDirectory])
        #expect(created.status == 0, "\(created.stderr)")
        let list = try await WahostBinary.runDetached(["tenant", "list", "--database-url", url, "--data-dir", dataDirectory])
        #expect(list.stdout.contains("\"\(name)\""))
        #expect(!FileManager.default.fileExists(atPath: dataDirectory + "/system.db"))
        #expect(try await WahostBinary.runDetached(["tenant", "delete", String(name), "--database-url", url, "--data-dir", dataDirectory]).status == 0)
    }

    @Test func unreachableDatabaseIsAClearError() async throws {
        let dataDirectory = try makeTemporaryDirectory()
        let result = try await WahostBinary.runDetached(["tenant", "list", "--database-url", "mysql://x", "--data-dir", dataDirectory])
        #expect(result.status == 1)
        #expect(result.stderr.contains("unsupported database URL"))
    }
}

/// Converts a base32 secret to hex, to look for the raw secret bytes in a dump.
enum Base32Hex {
    static func hex(ofBase32 text: String) -> String? {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        var bits = 0
        var buffer = 0
        var bytes: [UInt8] = []
        for character in text {
            guard let value = alphabet.firstIndex(of: character) else { return nil }
            buffer = (buffer << 5) | value
            bits += 5
            if bits >= 8 {
                bytes.append(UInt8((buffer >> (bits - 8)) & 0xFF))
                bits -= 8
            }
        }
        return bytes.map { String(format: "%02x", $0) }.joined()
    }
}

@Suite struct CLITerminalTests {
    /// Under a pseudo-terminal (util-linux `script`), `tenant create` adds a QR of the otpauth URI after the JSON.
    @Test func createDrawsATerminalQROnATTY() throws {
        let dataDirectory = try makeTemporaryDirectory()
        let command = "'\(WahostBinary.path)' tenant create acme --data-dir '\(dataDirectory)'"
        let result = try runProcess("/usr/bin/env", ["script", "-qec", command, "/dev/null"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("\"admin_token\""))
        let qrLines = result.stdout.split(whereSeparator: \.isNewline).filter { $0.contains("█") || $0.contains("▀") || $0.contains("▄") }
        #expect(qrLines.count > 15, "expected a QR code of at least 30 modules")
    }
}
