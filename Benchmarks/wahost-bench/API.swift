import ArgumentParser
import Foundation

/// `api --seconds S`: load `status` and authenticated `groups` of a paired session from a second process (Debian `wrk`).
struct API: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Requests per second and latency of `status` and authenticated `groups` (wrk).")

    @Option(help: "Seconds of load per endpoint.") var seconds = 10
    // One wrk thread saturates the server here, and wrk shares the machine's two cores with it; 32 connections
    // keep both server threads busy without queueing requests behind each other (docs/benchmarks.md).
    @Option(help: "wrk connections.") var connections = 32
    @Option(help: "wrk threads.") var threads = 1

    func run() async throws {
        let rig = try await BenchRig(count: 1)
        defer { rig.stop() }
        let server = try await rig.startServer()
        _ = try await rig.pairAll(port: server.port, concurrency: 1)
        let (name, token) = rig.tokens[0]
        var result: [String: Any] = ["benchmark": "api", "seconds": seconds, "connections": connections]
        for (label, path, headers) in [
            ("status", "/tenants/\(name)/session/status", [String]()),
            ("groups", "/tenants/\(name)/session/groups", ["-H", "x-admin-token: \(token)"]),
        ] {
            let output = try runWrk(["-t\(threads)", "-c\(connections)", "-d\(seconds)s", "--latency"] + headers + ["http://127.0.0.1:\(server.port)\(path)"])
            let parsed = WrkOutput(output)
            guard parsed.non2xx == 0 else { throw BenchError("\(label): \(parsed.non2xx) responses were not 2xx\n\(output)") }
            result["\(label)_requests_per_second"] = parsed.requestsPerSecond
            result["\(label)_p50_ms"] = parsed.p50
            result["\(label)_p99_ms"] = parsed.p99
        }
        printJSONLine(result)
    }

    private func runWrk(_ arguments: [String]) throws -> String {
        try runTool("/usr/bin/wrk", arguments)
    }
}

/// The numbers read from wrk's `--latency` report.
struct WrkOutput {
    var requestsPerSecond = 0.0
    var p50 = 0.0
    var p99 = 0.0
    var non2xx = 0

    init(_ text: String) {
        for line in text.split(separator: "\n").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            if line.hasPrefix("Requests/sec:"), parts.count > 1 { requestsPerSecond = Double(parts[1]) ?? 0 }
            if line.hasPrefix("50%"), parts.count > 1 { p50 = Self.milliseconds(parts[1]) }
            if line.hasPrefix("99%"), parts.count > 1 { p99 = Self.milliseconds(parts[1]) }
            if line.hasPrefix("Non-2xx or 3xx responses:"), let last = parts.last { non2xx = Int(last) ?? 0 }
        }
    }

    /// wrk prints `812.00us`, `1.23ms` or `2.00s`.
    static func milliseconds(_ text: String) -> Double {
        if text.hasSuffix("us") { return (Double(text.dropLast(2)) ?? 0) / 1000 }
        if text.hasSuffix("ms") { return Double(text.dropLast(2)) ?? 0 }
        if text.hasSuffix("s") { return (Double(text.dropLast(1)) ?? 0) * 1000 }
        return 0
    }
}
