import Foundation
import TestSupport
import WahostBasics

/// `chaos --storage-faults N`: the system database taken away from a running `serve` for `--storage-fault-seconds`, in
/// turn: `system.db` locked by another process (`BEGIN EXCLUSIVE`) and the data directory's file system full (a tmpfs,
/// when mounting is permitted), or with `--database-url` and `--postgres-data-dir`, PostgreSQL stopped (under every
/// node of a cluster too). Peers keep texting; the API must answer every probe, through any node, with a success or a
/// clear refusal, and every session must connect again.
extension Chaos {
    /// What the storage faults came to.
    struct StorageFaultOutcome {
        var faults: [String: Int] = [:]
        var refusals: [String: Int] = [:]
        var wrong: [String] = []
        var reconnectFailures = 0
    }

    /// A tmpfs of 256 MiB holding a copy of `directory`, for `serve`'s data directory; nil when it cannot be mounted.
    static func faultableDataDirectory(copying directory: String) -> String? {
        let mountPoint = directory + "-tmpfs"
        guard (try? FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)) != nil,
            spawnAndWait(["/usr/bin/mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", mountPoint]) == 0
        else {
            FileHandle.standardError.write(Data("chaos: cannot mount a tmpfs (needs root); no disk-full faults\n".utf8))
            return nil
        }
        guard spawnAndWait(["/bin/sh", "-c", "cp -a '\(directory)/.' '\(mountPoint)/'"]) == 0 else { return nil }
        return mountPoint
    }

    func applyStorageFaults(_ rig: BenchRig, ports: [Int], dataDirectory: String, onTmpfs: Bool, generator: inout SeededGenerator) async throws
        -> StorageFaultOutcome
    {
        var outcome = StorageFaultOutcome()
        var kinds: [String] = []
        if databaseURL == nil { kinds.append("sqlite_locked") }
        if onTmpfs, databaseURL == nil { kinds.append("disk_full") }
        if databaseURL != nil, postgresDataDir != nil { kinds.append("postgres_stopped") }
        guard !kinds.isEmpty else { throw BenchError("--storage-faults: no fault applies (PostgreSQL needs --postgres-data-dir)") }
        for index in 0..<storageFaults {
            try await Task.sleep(for: .milliseconds(Int64(Double.random(in: 0...cycleSeconds, using: &generator) * 1000)))
            let kind = kinds[index % kinds.count]
            outcome.faults[kind, default: 0] += 1
            let end = try startStorageFault(kind, dataDirectory: dataDirectory)
            let until = ContinuousClock.now + .milliseconds(Int64(storageFaultSeconds * 1000))
            while ContinuousClock.now < until {
                let (tenant, token) = rig.tokens[Int.random(in: 0..<rig.tokens.count, using: &generator)]
                let port = ports[Int.random(in: 0..<ports.count, using: &generator)]
                for path in ["/tenants/\(tenant)/session/status", "/tenants/\(tenant)/events?limit=5"] {
                    await probe(port: port, path: path, token: token, into: &outcome)
                }
                try await Task.sleep(for: .seconds(1))
            }
            try end()
            if try await rig.waitConnected(expected: tenants, timeout: .seconds(90)) != tenants { outcome.reconnectFailures += 1 }
        }
        return outcome
    }

    /// The outcome's figures in the report, its wrong answers in `broken`, its reconnect checks in `reconnect`.
    func record(_ outcome: StorageFaultOutcome, in report: inout [String: Any], broken: inout [String], reconnect: inout (checks: Int, failures: Int)) {
        report["storage_faults"] = outcome.faults
        report["storage_fault_answers"] = outcome.refusals
        report["storage_fault_wrong_answers"] = outcome.wrong.count
        report["storage_fault_seconds"] = storageFaultSeconds
        reconnect.checks += storageFaults
        reconnect.failures += outcome.reconnectFailures
        broken += outcome.wrong.prefix(10).map { "during a storage fault: " + $0 }
    }

    /// One call during a fault: a success, a 503 with a code and `retry_after`, or a 409 for a session between
    /// connections; anything else (a 500, a hang past 30 s) is a wrong answer.
    private func probe(port: Int, path: String, token: String, into outcome: inout StorageFaultOutcome) async {
        do {
            let (status, body) = try await request("GET", "http://127.0.0.1:\(port)\(path)", headers: ["x-admin-token": token, "accept": "application/json"])
            let error = body["error"] as? [String: Any]
            let code = error?["code"] as? String ?? ""
            switch status {
            case 200: outcome.refusals["200", default: 0] += 1
            case 503 where !code.isEmpty && error?["retry_after"] is Int: outcome.refusals["503 \(code)", default: 0] += 1
            case 409 where code == "not_connected" || code == "wrong_state": outcome.refusals["409 \(code)", default: 0] += 1
            default: outcome.wrong.append("\(path): \(status) \(body)")
            }
        } catch {
            outcome.wrong.append("\(path): no answer (\(error))")
        }
    }

    /// Starts one fault; returns what ends it.
    private func startStorageFault(_ kind: String, dataDirectory: String) throws -> () throws -> Void {
        switch kind {
        case "sqlite_locked":
            let holder = Process()
            let input = Pipe()
            let output = Pipe()
            holder.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            holder.arguments = [
                "python3", "-c",
                "import sqlite3,sys\ndb=sqlite3.connect(sys.argv[1],isolation_level=None,timeout=30)\ndb.execute('BEGIN EXCLUSIVE')\nprint('locked',flush=True)\nsys.stdin.readline()\ndb.execute('ROLLBACK')",
                dataDirectory + "/system.db",
            ]
            holder.standardInput = input
            holder.standardOutput = output
            try holder.run()
            guard String(decoding: output.fileHandleForReading.availableData, as: UTF8.self).hasPrefix("locked") else {
                throw BenchError("could not lock system.db")
            }
            return {
                input.fileHandleForWriting.write(Data("\n".utf8))
                holder.waitUntilExit()
            }
        case "disk_full":
            let filler = dataDirectory + "/.filler"
            _ = spawnAndWait(["/bin/sh", "-c", "dd if=/dev/zero of='\(filler)' bs=64k 2>/dev/null; dd if=/dev/zero of='\(filler)-tail' bs=1 2>/dev/null"])
            return {
                try FileManager.default.removeItem(atPath: filler)
                try? FileManager.default.removeItem(atPath: filler + "-tail")
            }
        default:
            guard let postgresDataDir else { throw BenchError("no --postgres-data-dir") }
            // `pg_ctl start` forgets the options the server was started with: they are in postmaster.opts.
            let started = try String(contentsOfFile: postgresDataDir + "/postmaster.opts", encoding: .utf8)
            let options = started.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: " ", maxSplits: 1).dropFirst().joined()
            try postgresControl(["-D", postgresDataDir, "-m", "fast", "-w", "stop"])
            return { try postgresControl(["-D", postgresDataDir, "-l", postgresDataDir + "/restarted.log", "-o", options, "-w", "start"]) }
        }
    }

    /// `pg_ctl` of the newest installed PostgreSQL, as `postgres` when root.
    private func postgresControl(_ arguments: [String]) throws {
        let root = "/usr/lib/postgresql"
        let version = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).compactMap(Int.init).max() ?? 0
        let command = (["\(root)/\(version)/bin/pg_ctl"] + arguments).map { "'\($0)'" }.joined(separator: " ") + " >/dev/null 2>&1 </dev/null"
        let argv = getuid() == 0 ? ["/usr/sbin/runuser", "-u", "postgres", "--", "/bin/sh", "-c", command] : ["/bin/sh", "-c", command]
        guard spawnAndWait(argv) == 0 else { throw BenchError("pg_ctl \(arguments.last ?? "") failed") }
    }
}

