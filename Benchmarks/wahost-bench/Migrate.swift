import ArgumentParser
import Foundation
import TestSupport

/// `migrate --count N`: N paired sessions' credentials moved to the database and back with `wahost
/// migrate-credentials`, each run killed halfway and resumed; every session must log in afterwards without pairing.
struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Move N sessions' credentials files → database → files, each run kill -9'd halfway and resumed; fails unless all log in unpaired.")

    @Option(help: "Sessions to pair and move.") var count = 1000
    @Option(help: "Pairings in flight at once while setting up.") var concurrency = 32
    @Option(help: "postgres://… system database (default: SQLite in the data directory).") var databaseURL: String?

    func run() async throws {
        let rig = try await BenchRig(count: count, databaseURL: databaseURL)
        defer { rig.stop() }
        var server = try await rig.startServer(extraEnvironment: ["WAHOST_CREDENTIALS": "files"])
        _ = try await rig.pairAll(port: server.port, concurrency: concurrency)
        try await rig.waitForPreKeys()
        let registrations = try await rig.simulatorState()["registrations"] as? Int ?? -1
        var result: [String: Any] = ["benchmark": "migrate", "count": count]
        for (direction, location) in [("to-database", "database"), ("to-files", "files")] {
            server.process.stop()
            guard try await rig.waitConnected(expected: 0) == 0 else { throw BenchError("sessions still connected after stopping serve") }
            let start = ContinuousClock.now
            let interrupted = try await migrate(rig, direction, killAfter: count / 2)
            let resumed = try await migrate(rig, direction, killAfter: nil)
            let elapsed = seconds(ContinuousClock.now - start)
            // The child may have moved more than the lines read before the kill; the logins below are the proof.
            guard interrupted < count, resumed > 0 else { throw BenchError("\(direction): the kill did not land mid-run") }
            server = try await rig.startServer(extraEnvironment: ["WAHOST_CREDENTIALS": location])
            let connected = try await rig.waitConnected(timeout: .seconds(300))
            let now = try await rig.simulatorState()["registrations"] as? Int ?? -1
            guard connected == count, now == registrations else {
                throw BenchError("\(direction): \(connected) of \(count) logged in, registrations \(registrations) → \(now)")
            }
            result["\(direction)_seconds"] = (elapsed * 100).rounded() / 100
            result["\(direction)_moved_before_kill"] = interrupted
            result["\(direction)_moved_after_resume"] = resumed
        }
        result["connected"] = count
        result["registrations"] = registrations
        printJSONLine(result)
    }

    /// Runs `wahost migrate-credentials`; with `killAfter`, kill -9 once that many tenants were reported moved.
    /// Returns how many it reported moved.
    func migrate(_ rig: BenchRig, _ direction: String, killAfter: Int?) async throws -> Int {
        var environment = ["WAHOST_MASTER_KEY": rig.masterKey]
        environment["WAHOST_DATABASE_URL"] = rig.databaseURL
        let child = try ChildProcess(rig.binary, ["migrate-credentials", "--\(direction)", "--data-dir", rig.directory], environment: environment)
        var moved = 0
        while let line = child.nextLine() {
            if line.hasPrefix("moved ") { moved += 1 }
            if line.hasPrefix("conflict ") || line.hasPrefix("unreadable ") { throw BenchError("\(direction): \(line)") }
            if let killAfter, moved >= killAfter {
                kill(child.pid, SIGKILL)
                await child.process.exited()
                return moved
            }
        }
        await child.process.exited()
        guard child.process.terminationStatus == 0 else { throw BenchError("migrate-credentials --\(direction) exited \(child.process.terminationStatus)") }
        return moved
    }
}
