import ArgumentParser
import Foundation

/// `memory --count N`: where a connected session's memory goes, measured with heaptrack.
///
/// Runs `wahost serve` under heaptrack twice over the same data: once before any session is paired (the
/// process's fixed heap), once restoring N paired sessions and holding them connected with keepalives running.
/// Each run ends with SIGKILL, so every allocation live at that moment is reported with its allocation stack;
/// the stacks are sorted into the parts a session is made of, and the difference between the runs divided by N
/// is the heap one connected session costs.
struct Memory: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Split the heap of N connected sessions by what holds it (heaptrack over a restored `wahost serve`).")

    @Option(help: "Sessions to pair, restore under heaptrack and hold.") var count = 500
    @Option(help: "Seconds to hold them connected before taking the heap.") var hold = 20
    @Option(help: "Pairings in flight at once while setting up.") var concurrency = 32
    @Option(help: "The heaptrack script.") var heaptrack = "/usr/bin/heaptrack"
    @Option(help: "heaptrack's report tool.") var heaptrackPrint = "/usr/bin/heaptrack_print"

    func run() async throws {
        guard FileManager.default.isExecutableFile(atPath: heaptrack), FileManager.default.isExecutableFile(atPath: heaptrackPrint) else {
            throw BenchError("heaptrack is not installed (Debian package heaptrack; ./ops/test installs it)")
        }
        let rig = try await BenchRig(count: count)
        defer { rig.stop() }
        let baseline = try await liveHeap(rig, connected: 0, label: "baseline")
        let first = try await rig.startServer()
        _ = try await rig.pairAll(port: first.port, concurrency: concurrency)
        first.process.stop()
        _ = try await rig.waitConnected(expected: 0)
        let loaded = try await liveHeap(rig, connected: count, label: "sessions")

        let sessions = max(count, 1)
        var result: [String: Any] = [
            "benchmark": "memory", "count": count, "connected": loaded.connected, "rss_bytes_under_heaptrack": loaded.rss,
            "heap_fixed_bytes": baseline.split.total, "heap_live_bytes": loaded.split.total,
            "heap_per_session_bytes": (loaded.split.total - baseline.split.total) / sessions,
        ]
        for part in Set(loaded.split.bytes.keys).union(baseline.split.bytes.keys) {
            result["heap_per_session_bytes.\(part)"] = ((loaded.split.bytes[part] ?? 0) - (baseline.split.bytes[part] ?? 0)) / sessions
        }
        printJSONLine(result)
    }

    /// Starts `serve` under heaptrack, waits for `connected` sessions, holds, kills it and splits what was live.
    private func liveHeap(_ rig: BenchRig, connected expected: Int, label: String) async throws -> (split: HeapSplit, rss: Int, connected: Int) {
        let output = rig.directory + "/heaptrack.\(label)"
        let traced = try await rig.startServer(wrapper: [heaptrack, "--output", output])
        let connected = try await rig.waitConnected(expected: expected)
        try await Task.sleep(for: .seconds(hold))
        guard let serve = childProcess(of: traced.process.pid, named: "wahost") else { throw BenchError("no serve process under heaptrack") }
        let memory = try memoryBytes(pid: serve)
        kill(serve, SIGKILL)
        traced.process.process.waitUntilExit()
        guard let recorded = try FileManager.default.contentsOfDirectory(atPath: rig.directory).first(where: { $0.hasPrefix("heaptrack.\(label).") })
        else { throw BenchError("heaptrack wrote no data") }
        let stacks = rig.directory + "/\(label).stacks"
        _ = try runTool(heaptrackPrint, ["--file", rig.directory + "/" + recorded, "--print-flamegraph", stacks, "--flamegraph-cost-type", "leaked"])
        return (HeapSplit(foldedStacks: try String(contentsOfFile: stacks, encoding: .utf8)), memory.rss, connected)
    }

    /// The first child of `parent` whose command name is `name` (heaptrack runs the program as its child).
    private func childProcess(of parent: Int32, named name: String) -> Int32? {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        for entry in entries {
            guard let pid = Int32(entry), let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")")
            else { continue }
            let command = stat[stat.index(after: open)..<close]
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if command == name, fields.count > 1, Int32(fields[1]) == parent { return pid }
        }
        return nil
    }
}

/// Live heap bytes by what a session is made of, from heaptrack's folded stacks (`frame;frame;…;leaf bytes`).
///
/// Each stack is attributed to the allocation-nearest frame that belongs to a known part; runtime and standard
/// library frames (allocation, array growth, metadata) are looked through.
struct HeapSplit {
    private(set) var bytes: [String: Int] = [:]
    private(set) var total = 0

    /// Parts, checked in this order against each frame (mangled Swift names carry their module's name).
    static let parts: [(name: String, markers: [String])] = [
        ("tls", ["NIOSSL"]),
        ("noise_and_crypto", ["Noise", "CCryptoBoringSSL", "6Crypto", "Crypto.", "XEdDSA", "Curve25519"]),
        ("codec", ["WABinary", "FrameReader", "FrameReassembler", "SwiftProtobuf", "WAProto", "FramePlaintext"]),
        ("socket_and_websocket", ["NIOPosix", "NIOCore", "NIOWebSocket", "WSCore", "WSClient", "NIOHTTP1", "NIOExtras"]),
        ("sessions_and_clients", ["SessionPool", "8WhatsApp", "WhatsApp.", "Tenancy"]),
        ("storage", ["GRDB", "sqlite3", "7Storage", "Storage.", "PostgresNIO"]),
        ("http_api", ["Hummingbird", "AdminAPI", "Mustache", "Prometheus", "Metrics"]),
        ("swift_concurrency", ["swift_task", "swift_continuation", "AsyncStream", "swift::AsyncTask", "libswift_Concurrency"]),
    ]

    init(foldedStacks: String) {
        for line in foldedStacks.split(separator: "\n") {
            guard let space = line.lastIndex(of: " "), let cost = Int(line[line.index(after: space)...]), cost > 0 else { continue }
            let frames = line[..<space].split(separator: ";").reversed()
            let part = frames.lazy.compactMap { frame in Self.parts.first { $0.markers.contains { frame.contains($0) } }?.name }.first
            bytes[part ?? "other", default: 0] += cost
            total += cost
        }
    }
}

/// Runs a tool to completion and returns its standard output; throws with its output when it fails.
func runTool(_ executable: String, _ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let text = String(decoding: data, as: UTF8.self)
    guard process.terminationStatus == 0 else { throw BenchError("\(executable) failed: \(text)") }
    return text
}
