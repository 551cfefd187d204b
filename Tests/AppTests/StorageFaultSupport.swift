import Foundation
import TestSupport
import Testing

/// A PostgreSQL cluster of the test's own (initdb in a temporary directory) that the test stops and starts at will.
final class ThrowawayPostgres: @unchecked Sendable {
    let binaries: String
    let dataDirectory: String
    let port: Int

    /// The newest installed PostgreSQL's binaries, if any.
    static var installedBinaries: String? {
        let root = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).compactMap(Int.init).sorted()
        return versions.last.map { "\(root)/\($0)/bin" }.flatMap { FileManager.default.isExecutableFile(atPath: $0 + "/initdb") ? $0 : nil }
    }

    /// Creates and starts a cluster with an empty database `wahost`.
    init(binaries: String) async throws {
        self.binaries = binaries
        dataDirectory = try makeTemporaryDirectory("wahost-pg")
        port = try freePort()
        if getuid() == 0 { _ = try runProcess("/usr/bin/chown", ["postgres:postgres", dataDirectory]) }
        try await run("initdb", ["-D", dataDirectory, "-A", "trust", "-U", "wahost_test"])
        try await start()
        try await run("psql", ["-h", "127.0.0.1", "-p", "\(port)", "-U", "wahost_test", "-d", "postgres", "-q", "-c", "CREATE DATABASE wahost"])
    }

    var url: String { "postgres://wahost_test@127.0.0.1:\(port)/wahost" }

    func start() async throws {
        try await run("pg_ctl", [
            "-D", dataDirectory, "-l", dataDirectory + "/server.log", "-w", "-o",
            "-c listen_addresses=127.0.0.1 -p \(port) -k \(dataDirectory) -c fsync=off -c max_connections=100", "start",
        ])
    }

    /// A fast shutdown: open connections are closed, as when an operator or a crash takes the database away.
    func stop() async throws { try await run("pg_ctl", ["-D", dataDirectory, "-m", "fast", "-w", "stop"]) }

    func destroy() {
        _ = spawnAndWait(Self.command(binaries: binaries, dataDirectory: dataDirectory, "pg_ctl", ["-D", dataDirectory, "-m", "immediate", "-w", "stop"]))
        try? FileManager.default.removeItem(atPath: dataDirectory)
        try? FileManager.default.removeItem(atPath: dataDirectory + "-tools.log")
    }

    /// Runs a PostgreSQL tool (as `postgres` when root) with its output in a file: the server `pg_ctl` starts keeps
    /// the descriptors it inherited, so a pipe would never reach its end. Waited for on a thread of its own.
    private func run(_ tool: String, _ arguments: [String]) async throws {
        guard await spawnAndWaitDetached(Self.command(binaries: binaries, dataDirectory: dataDirectory, tool, arguments)) == 0 else {
            throw TestSupportError("\(tool) failed: \((try? String(contentsOfFile: dataDirectory + "-tools.log", encoding: .utf8)) ?? "")")
        }
    }

    /// The argument vector that runs `tool` with its output appended to the cluster's tools log.
    private static func command(binaries: String, dataDirectory: String, _ tool: String, _ arguments: [String]) -> [String] {
        let quoted = ([binaries + "/" + tool] + arguments).map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
        let script = quoted + " >>'\(dataDirectory)-tools.log' 2>&1 </dev/null"
        return getuid() == 0 ? ["/usr/sbin/runuser", "-u", "postgres", "--", "/bin/sh", "-c", script] : ["/bin/sh", "-c", script]
    }
}

/// A small tmpfs mounted on a directory, filled up and freed on demand; nil when mounting is not permitted.
final class SmallFileSystem: @unchecked Sendable {
    let directory: String
    private var filler: String { directory + "/.filler" }

    init?(on directory: String, megabytes: Int) throws {
        self.directory = directory
        guard getuid() == 0,
            let result = try? runProcess("/usr/bin/mount", ["-t", "tmpfs", "-o", "size=\(megabytes)m", "tmpfs", directory]), result.status == 0
        else { return nil }
    }

    /// Writes zeros until the file system is full.
    func fill() throws {
        _ = try runProcess("/usr/bin/dd", ["if=/dev/zero", "of=\(filler)", "bs=64k"])
        // dd stops at a partial block; fill the last bytes too.
        _ = try runProcess("/usr/bin/dd", ["if=/dev/zero", "of=\(filler)-tail", "bs=1"])
    }

    func free() throws {
        try FileManager.default.removeItem(atPath: filler)
        try? FileManager.default.removeItem(atPath: filler + "-tail")
    }

    func unmount() { _ = try? runProcess("/usr/bin/umount", ["-l", directory]) }
}

/// What the API answered while the database was away: every answer must be a success or a clear refusal, in time.
struct OutageAnswers {
    var calls = 0
    var refusals: [String: Int] = [:]
    var wrong: [String] = []

    /// Calls each endpoint once; a 503 must carry a JSON error code and `retry_after`, a 409 may say the session is not
    /// connected, nothing may hang.
    mutating func probe(_ port: Int, tenant: String, token: String, operatorToken: String) async {
        let auth = ["x-admin-token": token]
        let calls: [(String, String, [String: String], String?)] = [
            ("GET", "/tenants/\(tenant)/session/status", auth, nil),
            ("GET", "/tenants/\(tenant)/events?limit=5", auth.merging(["accept": "application/json"]) { $1 }, nil),
            ("GET", "/tenants/\(tenant)/session/groups", auth, nil),
            ("POST", "/tenants/\(tenant)/messages", auth, #"{"to": "15557770009", "text": "during the outage"}"#),
            ("GET", "/tenants", ["x-admin-token": operatorToken], nil),
            ("GET", "/tenants/\(tenant)/webhook", auth, nil),
        ]
        for (method, path, headers, body) in calls {
            self.calls += 1
            do {
                let answer = try await http(method, port, path, headers: headers, body: body.map { Data($0.utf8) })
                switch answer.status {
                case 200, 201: continue
                case 503:
                    let detail = answer.object["error"] as? [String: Any]
                    if let code = detail?["code"] as? String, detail?["retry_after"] as? Int != nil, answer.header("retry-after") != nil {
                        refusals["503 \(code)", default: 0] += 1
                    } else {
                        wrong.append("\(method) \(path): 503 without a code and retry_after: \(answer.text)")
                    }
                case 409 where ["not_connected", "wrong_state"].contains(answer.errorCode ?? ""):
                    // The session is between connections: it ended its connection rather than ack what it could not store.
                    refusals["409 \(answer.errorCode ?? "")", default: 0] += 1
                default: wrong.append("\(method) \(path): \(answer.status) \(answer.text)")
                }
            } catch {
                wrong.append("\(method) \(path): no answer (\(error))")
            }
        }
    }
}
