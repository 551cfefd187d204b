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
    @Option(help: "Also copy heaptrack's folded stacks (baseline.stacks, sessions.stacks) into this directory.") var keepStacks: String?
    @Flag(help: "Connect over TLS (wss://, the simulator's self-signed certificate) as against WhatsApp.") var tls = false
    @Flag(help: "Take the heap of the process that paired the sessions instead of one that restored them.") var afterPairing = false

    func run() async throws {
        guard FileManager.default.isExecutableFile(atPath: heaptrack), FileManager.default.isExecutableFile(atPath: heaptrackPrint) else {
            throw BenchError("heaptrack is not installed (Debian package heaptrack; ./ops/test installs it)")
        }
        let rig = try await BenchRig(count: count, tls: tls)
        defer { rig.stop() }
        let baseline = try await liveHeap(rig, connected: 0, label: "baseline")
        let loaded: (split: HeapSplit, rss: Int, connected: Int)
        if afterPairing {
            loaded = try await liveHeap(rig, connected: count, label: "sessions") { port in
                _ = try await rig.pairAll(port: port, concurrency: concurrency)
            }
        } else {
            let first = try await rig.startServer()
            _ = try await rig.pairAll(port: first.port, concurrency: concurrency)
            first.process.stop()
            _ = try await rig.waitConnected(expected: 0)
            loaded = try await liveHeap(rig, connected: count, label: "sessions")
        }

        let sessions = max(count, 1)
        var result: [String: Any] = [
            "benchmark": "memory", "count": count, "tls": tls, "after_pairing": afterPairing, "connected": loaded.connected, "rss_bytes_under_heaptrack": loaded.rss,
            "heap_fixed_bytes": baseline.split.total, "heap_live_bytes": loaded.split.total,
            "heap_per_session_bytes": (loaded.split.total - baseline.split.total) / sessions,
        ]
        for part in Set(loaded.split.bytes.keys).union(baseline.split.bytes.keys) {
            result["heap_per_session_bytes.\(part)"] = ((loaded.split.bytes[part] ?? 0) - (baseline.split.bytes[part] ?? 0)) / sessions
        }
        printJSONLine(result)
    }

    /// Starts `serve` under heaptrack, runs `prepare` against its port, waits for `connected` sessions, holds, kills it
    /// and splits what was live.
    private func liveHeap(
        _ rig: BenchRig, connected expected: Int, label: String, prepare: (Int) async throws -> Void = { _ in }
    ) async throws -> (split: HeapSplit, rss: Int, connected: Int) {
        let output = rig.directory + "/heaptrack.\(label)"
        let traced = try await rig.startServer(wrapper: [heaptrack, "--output", output])
        try await prepare(traced.port)
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
        if let keepStacks {
            try FileManager.default.createDirectory(atPath: keepStacks, withIntermediateDirectories: true)
            try? FileManager.default.removeItem(atPath: keepStacks + "/\(label).stacks")
            try FileManager.default.copyItem(atPath: stacks, toPath: keepStacks + "/\(label).stacks")
        }
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
/// Each stack goes to the allocation-nearest frame that belongs to a known part. A Swift frame belongs to the
/// module that defines it (the `$s<length><module>` prefix of its mangled name; matching anywhere in the name
/// would also catch functions that merely take, say, a NIOSSL type as a parameter); a C frame to its library.
/// Runtime and standard library frames are looked through, and so is NIOCore (`ByteBuffer`, pipelines), which
/// allocates for its caller: NIOSSL's record buffers count as TLS, not as socket buffers. A stack with NIOCore and
/// no other known frame counts as socket and WebSocket.
struct HeapSplit {
    private(set) var bytes: [String: Int] = [:]
    private(set) var total = 0

    /// The part each Swift module's frames belong to.
    static let modules: [String: String] = [
        "NIOSSL": "tls", "Crypto": "noise_and_crypto", "_CryptoExtras": "noise_and_crypto", "CryptoExtras": "noise_and_crypto",
        "WABinary": "codec", "WAProto": "codec", "SwiftProtobuf": "codec", "CompressNIO": "codec",
        "NIOPosix": "socket_and_websocket", "NIOWebSocket": "socket_and_websocket", "WSCore": "socket_and_websocket",
        "WSClient": "socket_and_websocket", "NIOHTTP1": "socket_and_websocket", "NIOExtras": "socket_and_websocket",
        "WhatsApp": "sessions_and_clients", "SessionPool": "sessions_and_clients", "Tenancy": "sessions_and_clients",
        "GRDB": "storage", "Storage": "storage", "PostgresNIO": "storage",
        "Hummingbird": "http_api", "HummingbirdCore": "http_api", "HummingbirdRouter": "http_api", "AdminAPI": "http_api",
        "App": "http_api", "Mustache": "http_api", "Prometheus": "http_api", "CoreMetrics": "http_api",
    ]
    /// Types of the WhatsApp module that are Noise, key or frame-codec state rather than client bookkeeping.
    static let whatsAppParts: [(marker: String, part: String)] = [
        ("Noise", "noise_and_crypto"), ("Curve25519", "noise_and_crypto"), ("XEdDSA", "noise_and_crypto"),
        ("FrameReader", "codec"), ("FrameReassembler", "codec"), ("FramePlaintext", "codec"), ("OutgoingFrame", "codec"),
    ]
    /// C libraries and runtime entry points, by a marker in the frame.
    static let cFrames: [(marker: String, part: String)] = [
        ("CNIOBoringSSL", "tls"), ("CCryptoBoringSSL", "noise_and_crypto"), ("sqlite3", "storage"), ("argon2", "sessions_and_clients"),
        ("swift_task", "swift_concurrency"), ("swift::AsyncTask", "swift_concurrency"), ("swift_continuation", "swift_concurrency"),
    ]

    init(foldedStacks: String) {
        for line in foldedStacks.split(separator: "\n") {
            guard let space = line.lastIndex(of: " "), let cost = Int(line[line.index(after: space)...]), cost > 0 else { continue }
            let frames = line[..<space].split(separator: ";").reversed()
            let part = frames.lazy.compactMap(Self.part(of:)).first
            bytes[part ?? (frames.contains { Self.module(of: $0) == "NIOCore" } ? "socket_and_websocket" : "other"), default: 0] += cost
            total += cost
        }
    }

    /// The part one frame belongs to, or nil for NIOCore, runtime, standard library and unknown frames.
    static func part(of frame: Substring) -> String? {
        if let module = module(of: frame) {
            if module == "WhatsApp", let inner = whatsAppParts.first(where: { frame.contains($0.marker) }) { return inner.part }
            return modules[module]
        }
        return cFrames.first { frame.contains($0.marker) }?.part
    }

    /// The defining module of a mangled Swift frame (`$s7NIOCore10ByteBuffer…` → `NIOCore`).
    static func module(of frame: Substring) -> String? {
        guard frame.hasPrefix("$s") else { return nil }
        let rest = frame.dropFirst(2)
        let digits = rest.prefix { $0.isASCII && $0.isNumber }
        guard let length = Int(digits), length > 0 else { return nil }
        let name = rest.dropFirst(digits.count).prefix(length)
        return name.count == length ? String(name) : nil
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
