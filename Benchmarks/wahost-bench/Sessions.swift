import App
import ArgumentParser
import Foundation
import Logging
import Tenancy

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `sessions --count N`: N tenants paired through a simulator in a separate process and held connected by one real
/// `wahost serve`, measured from outside with /proc.
struct Sessions: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Pair N sessions in one `wahost serve` against `wahost sim` (separate processes) and measure RSS and idle CPU.")

    @Option(help: "Sessions to create and pair.") var count = 100
    @Option(help: "Seconds to hold them connected (keepalives running) while measuring idle CPU.") var hold = 30
    @Option(help: "Pairings in flight at once.") var concurrency = 32
    @Option(help: "Have the simulator also send WebSocket pings this often (0: never, as documented for WhatsApp).")
    var simWsPingSeconds = 0
    @Flag(help: "Connect over TLS (wss://, the simulator's self-signed certificate) as against WhatsApp.") var tls = false

    func run() async throws {
        let rig = try await BenchRig(count: count, simulatorWebSocketPingSeconds: simWsPingSeconds, tls: tls)
        defer { rig.stop() }
        let server = try await rig.startServer()
        let pairSeconds = try await rig.pairAll(port: server.port, concurrency: concurrency)
        let connected = try await rig.waitConnected()
        let cpuBefore = try cpuSeconds(pid: server.process.pid)
        let holdStart = ContinuousClock.now
        try await Task.sleep(for: .seconds(hold))
        let cpuIdle = (try cpuSeconds(pid: server.process.pid) - cpuBefore) / seconds(ContinuousClock.now - holdStart) * 100
        let memory = try memoryBytes(pid: server.process.pid)
        printJSONLine([
            "benchmark": "sessions", "count": count, "connected": connected, "pair_seconds": (pairSeconds * 10).rounded() / 10,
            "rss_bytes": memory.rss, "hwm_bytes": memory.hwm, "rss_per_session_bytes": count > 0 ? memory.rss / count : 0,
            "cpu_percent_idle": (cpuIdle * 10).rounded() / 10, "hold_seconds": hold, "sim_ws_ping_seconds": simWsPingSeconds, "tls": tls,
        ])
    }
}

/// `restore --count N`: N sessions paired and stored, then a fresh `wahost serve` restores them all.
struct Restore: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Time a fresh `wahost serve` restoring N stored sessions to connected.")

    @Option(help: "Sessions to pair, store and restore.") var count = 100
    @Option(help: "Pairings in flight at once while setting up.") var concurrency = 32
    @Flag(help: "Connect over TLS (wss://, the simulator's self-signed certificate) as against WhatsApp.") var tls = false

    func run() async throws {
        let rig = try await BenchRig(count: count, tls: tls)
        defer { rig.stop() }
        let first = try await rig.startServer()
        _ = try await rig.pairAll(port: first.port, concurrency: concurrency)
        _ = try await rig.waitConnected()
        first.process.stop()
        _ = try await rig.waitConnected(expected: 0)
        let start = ContinuousClock.now
        let second = try await rig.startServer()
        let connected = try await rig.waitConnected()
        let restoreSeconds = seconds(ContinuousClock.now - start)
        let memory = try memoryBytes(pid: second.process.pid)
        printJSONLine([
            "benchmark": "restore", "count": count, "connected": connected, "restore_seconds": (restoreSeconds * 100).rounded() / 100,
            "rss_bytes": memory.rss, "hwm_bytes": memory.hwm, "tls": tls,
        ])
    }
}

/// A simulator process, a data directory with N tenants, and `wahost serve` processes over them.
final class BenchRig: @unchecked Sendable {
    let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("wahost").path
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("wahost-bench-\(UUID().uuidString)").path
    let masterKey = Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
    let simulator: ChildProcess
    let url: String
    let rootKey: String
    let control: String
    var tokens: [(String, String)] = []
    /// The operator's token (`x-admin-token` of the operator routes).
    var operatorToken = ""
    /// Each paired tenant's account user (the phone number's digits), by tenant name.
    var accounts: [String: String] = [:]
    var servers: [ChildProcess] = []

    /// The simulator's self-signed certificate when the sessions connect over TLS (`wss://`).
    let certificateFile: String?
    /// The system database when it is not `system.db` in the data directory (a cluster's PostgreSQL).
    let databaseURL: String?

    init(count: Int, simulatorWebSocketPingSeconds: Int = 0, tls: Bool = false, databaseURL: String? = nil) async throws {
        self.databaseURL = databaseURL
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw BenchError("\(binary) is missing: build both products first (`swift build -c release`)")
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var simArguments = ["sim", "--ws-ping-seconds", "\(simulatorWebSocketPingSeconds)"]
        if tls {
            let (certificate, key) = (directory + "/sim-cert.pem", directory + "/sim-key.pem")
            _ = try runTool("/usr/bin/openssl", [
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost", "-keyout", key, "-out", certificate,
            ])
            simArguments += ["--tls-cert", certificate, "--tls-key", key]
            certificateFile = certificate
        } else {
            certificateFile = nil
        }
        simulator = try ChildProcess(binary, simArguments, environment: [:])
        let simInfo = try JSONSerialization.jsonObject(with: Data(try simulator.firstLine().utf8)) as? [String: String] ?? [:]
        guard let url = simInfo["url"], let rootKey = simInfo["root_key"], let control = simInfo["control"] else {
            throw BenchError("wahost sim printed no URL")
        }
        (self.url, self.rootKey, self.control) = (url, rootKey, control)

        // BENCH-ONLY FAST PATH: tenants are created in this process with cheap argon2 parameters (t=1, 8 MiB, p=1) so
        // that N tenants do not cost N interactive-strength hashes. `serve` has no way to create such hashes; it only
        // verifies what it finds (the parameters are read from each PHC string).
        let cheap = TenantDirectory.Configuration(hashParameters: .init(iterations: 1, memoryKiB: 8 * 1024, parallelism: 1))
        var logger = Logger(label: "wahost.bench")
        logger.logLevel = .error
        let services = try await WahostServices.open(
            WahostConfiguration(dataDirectory: directory, databaseURL: databaseURL, masterKeyBase64: masterKey), tenancyConfiguration: cheap,
            logger: logger)
        for index in 0..<count {
            let name = "bench-\(index)"
            let issued = try await services.tenants.createTenant(try TenantName(name), mfa: false, actor: "bench")
            tokens.append((name, issued.adminToken.text))
        }
        operatorToken = try await services.tenants.issueOperatorToken(actor: "bench").text
        await services.close()
    }

    /// Starts `wahost serve` on a free port (under `wrapper`, e.g. heaptrack, when given) and waits for `/healthz`;
    /// `dataDirectory` (default: the rig's) and `arguments` go to `serve`.
    func startServer(
        wrapper: [String] = [], extraEnvironment: [String: String] = [:], dataDirectory: String? = nil, arguments: [String] = []
    ) async throws -> (process: ChildProcess, port: Int) {
        let port = try freeLoopbackPort()
        let command = wrapper + [binary, "serve", "--port", "\(port)", "--data-dir", dataDirectory ?? directory] + arguments
        var environment = ["WAHOST_WA_URL": url, "WAHOST_WA_ROOT_KEY": rootKey, "WAHOST_MASTER_KEY": masterKey, "WAHOST_LOG_LEVEL": "warning"]
        environment.merge(extraEnvironment) { $1 }
        environment["WAHOST_WA_CA_FILE"] = certificateFile
        environment["WAHOST_DATABASE_URL"] = databaseURL
        // WAHOST_BENCH_LOG_DIR keeps each server's log (at WAHOST_BENCH_LOG_LEVEL, default info) for a failed run.
        let logDirectory = ProcessInfo.processInfo.environment["WAHOST_BENCH_LOG_DIR"]
        if logDirectory != nil { environment["WAHOST_LOG_LEVEL"] = ProcessInfo.processInfo.environment["WAHOST_BENCH_LOG_LEVEL"] ?? "info" }
        let log = logDirectory.map { "\($0)/serve-\(port).log" }
        let server = try ChildProcess(command[0], Array(command.dropFirst()), environment: environment, errorLog: log)
        servers.append(server)
        try await waitForHealth(port: port)
        return (server, port)
    }

    /// Asks the server for each tenant's QR code and has the simulated phone scan it; returns the seconds taken.
    func pairAll(port: Int, concurrency: Int) async throws -> Double { try await pairAll(ports: [port], concurrency: concurrency) }

    /// Pairs tenant i through the server at `ports[i % ports.count]` (the node asked for the QR code runs the session).
    func pairAll(ports: [Int], concurrency: Int) async throws -> Double {
        let start = ContinuousClock.now
        let tokens = self.tokens
        let control = self.control
        accounts = try await withThrowingTaskGroup(of: (String, String).self) { group in
            var next = 0
            var accounts: [String: String] = [:]
            func add() {
                guard next < tokens.count else { return }
                let (name, token) = tokens[next]
                let port = ports[next % ports.count]
                next += 1
                group.addTask {
                    let (status, body) = try await request("GET", "http://127.0.0.1:\(port)/tenants/\(name)/session/qr", headers: ["x-admin-token": token])
                    guard status == 200, let qr = body["qr"] as? String else { throw BenchError("qr for \(name): \(status) \(body)") }
                    let (scanned, answer) = try await request("POST", control + "/scan", body: ["qr": qr])
                    guard scanned == 200, let jid = answer["jid"] as? String else { throw BenchError("scan for \(name): \(answer)") }
                    return (name, String(jid.prefix { $0 != ":" && $0 != "@" }))
                }
            }
            for _ in 0..<concurrency { add() }
            while let (name, account) = try await group.next() {
                accounts[name] = account
                add()
            }
            return accounts
        }
        _ = try await waitConnected()
        return seconds(ContinuousClock.now - start)
    }

    /// Waits (up to `timeout`) until the simulator sees `expected` (default: every) account connected.
    func waitConnected(expected: Int? = nil, timeout: Duration = .seconds(600)) async throws -> Int {
        let target = expected ?? tokens.count
        var connected = -1
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let (_, state) = try await request("GET", control + "/state")
            connected = (state["liveConnections"] as? [String: Int] ?? [:]).values.filter { $0 > 0 }.count
            if connected == target { return connected }
            try await Task.sleep(for: .milliseconds(100))
        }
        return connected
    }

    /// Waits until the simulator holds uploaded prekeys for every account (peers need them to start sessions).
    func waitForPreKeys() async throws {
        let deadline = ContinuousClock.now + .seconds(600)
        while ContinuousClock.now < deadline {
            let (_, state) = try await request("GET", control + "/state")
            if (state["preKeys"] as? [String: Int] ?? [:]).values.filter({ $0 > 0 }).count >= tokens.count { return }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw BenchError("prekeys were not uploaded for every account")
    }

    /// The tenants whose session runs on the node at `port`, by that node's own account (`GET /tenants`).
    func tenantsRunning(onNodeAt port: Int, nodeID: String) async throws -> [String] {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)/tenants")!)
        request.setValue(operatorToken, forHTTPHeaderField: "x-admin-token")
        let (data, _) = try await URLSession.shared.data(for: request)
        let list = (try? JSONSerialization.jsonObject(with: data)) as? [[String: Any]] ?? []
        return list.filter { $0["owner_node"] as? String == nodeID && $0["connected"] as? Bool == true }.compactMap { $0["tenant"] as? String }
    }

    /// When each of `tenants` was first seen logged in again since `loginsBefore` with one live connection; polls
    /// until all were or `timeout` passes (the missing ones are left out).
    func waitMoved(_ tenants: [String], loginsBefore: [String: Int], timeout: Duration) async throws -> [String: ContinuousClock.Instant] {
        var moved: [String: ContinuousClock.Instant] = [:]
        let deadline = ContinuousClock.now + timeout
        while moved.count < tenants.count, ContinuousClock.now < deadline {
            let state = try await simulatorState()
            let (logins, live) = (state["logins"] as? [String: Int] ?? [:], state["liveConnections"] as? [String: Int] ?? [:])
            let now = ContinuousClock.now
            for tenant in tenants where moved[tenant] == nil {
                guard let user = accounts[tenant], logins[user, default: 0] > loginsBefore[user, default: 0], live[user] == 1 else { continue }
                moved[tenant] = now
            }
            if moved.count < tenants.count { try await Task.sleep(for: .milliseconds(100)) }
        }
        return moved
    }

    /// The simulator's counters (`/control/state`).
    func simulatorState() async throws -> [String: Any] { try await request("GET", control + "/state").1 }

    /// SIGTERMs every server still running; how many had not exited 30 s later (and were killed).
    func stopServers() -> Int { servers.filter { !$0.stop() }.count }

    func stop() {
        for server in servers { server.stop() }
        simulator.stop()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// A child process whose standard output is read line by line.
final class ChildProcess: @unchecked Sendable {
    let process = Process()
    private let output = Pipe()
    /// Where the child's standard error goes, when kept.
    let errorLog: String?

    /// Starts the child; its standard error goes to `errorLog` (appended, created if missing) or nowhere.
    init(_ executable: String, _ arguments: [String], environment extra: [String: String], errorLog: String? = nil) throws {
        self.errorLog = errorLog
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(extra) { $1 }
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        if let errorLog {
            if !FileManager.default.fileExists(atPath: errorLog) { _ = FileManager.default.createFile(atPath: errorLog, contents: nil) }
            guard let handle = FileHandle(forWritingAtPath: errorLog) else { throw BenchError("cannot write \(errorLog)") }
            handle.seekToEndOfFile()
            process.standardError = handle
        }
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }

    /// The first line the child prints.
    func firstLine() throws -> String {
        guard let line = nextLine() else { throw BenchError("child exited before printing a line") }
        return line
    }

    /// The next line the child prints; nil once its output ends.
    func nextLine() -> String? {
        var bytes: [UInt8] = []
        while true {
            let chunk = output.fileHandleForReading.readData(ofLength: 1)
            guard let byte = chunk.first else { return bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self) }
            if byte == UInt8(ascii: "\n") { return String(decoding: bytes, as: UTF8.self) }
            bytes.append(byte)
        }
    }

    /// SIGTERM, then SIGKILL if the child has not exited 30 s later (a stop must not hang); true if it exited in time.
    @discardableResult
    func stop() -> Bool {
        guard process.isRunning else { return true }
        process.terminate()
        let deadline = Date().addingTimeInterval(30)
        while process.isRunning, Date() < deadline { usleep(50_000) }
        let exited = !process.isRunning
        if !exited {
            let name = process.executableURL?.lastPathComponent ?? "child"
            FileHandle.standardError.write(Data("bench: \(name) \(pid) did not exit within 30 s of SIGTERM; killed\n".utf8))
            // Its last words (kept with WAHOST_BENCH_LOG_DIR) say which shutdown step it was waiting on.
            if let errorLog, let text = try? String(contentsOfFile: errorLog, encoding: .utf8) {
                let tail = text.split(separator: "\n", omittingEmptySubsequences: false).suffix(60).joined(separator: "\n")
                FileHandle.standardError.write(Data("bench: the last lines of \(errorLog):\n\(tail)\n".utf8))
            }
            kill(pid, SIGKILL)
        }
        process.waitUntilExit()
        return exited
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

func request(
    _ method: String, _ url: String, headers: [String: String] = [:], body: [String: Any]? = nil, timeout: TimeInterval = 60
) async throws -> (Int, [String: Any]) {
    var request = URLRequest(url: URL(string: url)!)
    request.httpMethod = method
    request.timeoutInterval = timeout
    for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
    if let body {
        request.httpBody = try JSONSerialization.data(withJSONObject: body)
        request.setValue("application/json", forHTTPHeaderField: "content-type")
    }
    let (data, response) = try await URLSession.shared.data(for: request)
    return ((response as? HTTPURLResponse)?.statusCode ?? 0, (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:])
}

func waitForHealth(port: Int) async throws {
    for _ in 0..<300 {
        if let (status, _) = try? await request("GET", "http://127.0.0.1:\(port)/healthz"), status == 200 { return }
        try await Task.sleep(for: .milliseconds(100))
    }
    throw BenchError("wahost serve did not answer /healthz")
}

func freeLoopbackPort() throws -> Int {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(descriptor) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) == 0 && getsockname(descriptor, $0, &length) == 0 }
    }
    guard bound else { throw BenchError("no free port") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// User + system CPU seconds of a process, from /proc/<pid>/stat.
func cpuSeconds(pid: Int32) throws -> Double {
    let text = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
    guard let close = text.lastIndex(of: ")") else { throw BenchError("unreadable /proc/\(pid)/stat") }
    let fields = text[text.index(after: close)...].split(separator: " ")
    guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { throw BenchError("unreadable stat") }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// VmRSS and VmHWM of a process in bytes, from /proc/<pid>/status.
func memoryBytes(pid: Int32) throws -> (rss: Int, hwm: Int) {
    let text = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
    func field(_ name: String) -> Int {
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }) else { return 0 }
        return (Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0) * 1024
    }
    return (field("VmRSS"), field("VmHWM"))
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}
