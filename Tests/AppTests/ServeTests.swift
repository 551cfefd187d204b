import App
import Foundation
import Synchronization
import Hummingbird
import HummingbirdTesting
import Logging
import TestSupport
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

@Suite struct ServeTests {
    @Test func healthAndReadinessInProcess() async throws {
        let dataDirectory = try makeTemporaryDirectory()
        let services = try await WahostServices.open(WahostConfiguration(port: 0, dataDirectory: dataDirectory), logger: Logger(label: "test"))
        let app = try buildApplication(services: services, logger: Logger(label: "test"))
        try await app.test(.router) { client in
            try await client.execute(uri: "/healthz", method: .get) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).contains("\"status\":\"ok\""))
            }
            // Ready once storage answers and the pool made its first restore pass (it runs as a service of the app).
            var ready = false
            for _ in 0..<100 where !ready {
                try await client.execute(uri: "/readyz", method: .get) { response in
                    ready = response.status == .ok
                    if ready { #expect(String(buffer: response.body).contains("\"backend\":\"sqlite\"")) }
                }
                if !ready { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(ready)
            try await client.execute(uri: "/nope", method: .get) { response in
                #expect(response.status == .notFound)
            }
        }
        await services.close()
    }

    @Test func readinessFailsWhenStorageIsGone() async throws {
        let dataDirectory = try makeTemporaryDirectory()
        let services = try await WahostServices.open(WahostConfiguration(dataDirectory: dataDirectory), logger: Logger(label: "test"))
        await services.close()
        let app = try buildApplication(services: services, logger: Logger(label: "test"))
        try await app.test(.router) { client in
            try await client.execute(uri: "/readyz", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
            }
        }
    }

    /// The real `wahost serve` process: first start bootstraps tenant `default` once and serves `/healthz`.
    @Test func serveProcessBootstrapsOnceAndServesHealth() async throws {
        let dataDirectory = try makeTemporaryDirectory()
        let port = try freePort()
        let first = try ServerProcess.start(arguments: ["serve", "--port", "\(port)", "--data-dir", dataDirectory])
        defer { first.signalStop() }
        try await first.waitForHealth(port: port)
        await first.stop()
        let output = first.output
        #expect(output.contains("created tenant 'default'"))
        #expect(output.contains("wah_default_"))
        #expect(output.contains("wahop_"))
        #expect(output.contains("/dashboard/"))

        let second = try ServerProcess.start(arguments: ["serve", "--port", "\(port)", "--data-dir", dataDirectory])
        defer { second.signalStop() }
        try await second.waitForHealth(port: port)
        await second.stop()
        #expect(!second.output.contains("created tenant"), "secrets are printed on the first start only")
    }

    @Test func initSecretsFileKeepsFirstStartSecretsOffStdout() async throws {
        let dataDirectory = try makeTemporaryDirectory()
        let secretsPath = dataDirectory + "/first-start.json"
        let port = try freePort()
        let server = try ServerProcess.start(
            arguments: ["serve", "--port", "\(port)", "--data-dir", dataDirectory, "--init-secrets-file", secretsPath])
        defer { server.signalStop() }
        try await server.waitForHealth(port: port)
        await server.stop()
        #expect(!server.output.contains("wah_default_") && !server.output.contains("wahop_"), "no secret on stdout: \(server.output)")
        #expect(server.output.contains(secretsPath))
        let attributes = try FileManager.default.attributesOfItem(atPath: secretsPath)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        let secrets = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: secretsPath))) as? [String: String])
        #expect(secrets["admin_token"]?.hasPrefix("wah_default_") == true)
        #expect(secrets["operator_token"]?.hasPrefix("wahop_") == true)
        #expect(secrets["otp_secret"]?.count == 32)

        // An existing file is never overwritten: the start fails before creating anything.
        let again = try ServerProcess.start(
            arguments: ["serve", "--port", "\(try freePort())", "--data-dir", try makeTemporaryDirectory(), "--init-secrets-file", secretsPath])
        defer { again.signalStop() }
        for _ in 0..<300 where again.process.isRunning { try await Task.sleep(for: .milliseconds(50)) }
        #expect(!again.process.isRunning && again.process.terminationStatus == 1)
        #expect(again.output.contains("cannot create"), "\(again.output)")
    }
}

/// A running `wahost` child process with its output captured to a file.
final class ServerProcess: @unchecked Sendable {
    let process = Process()
    let logPath: String

    static func start(arguments: [String], environment extra: [String: String] = [:]) throws -> ServerProcess {
        let server = ServerProcess(logPath: try makeTemporaryDirectory() + "/server.log")
        _ = FileManager.default.createFile(atPath: server.logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: server.logPath))
        server.process.executableURL = URL(fileURLWithPath: WahostBinary.path)
        server.process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment.removeValue(forKey: "WAHOST_MASTER_KEY")
        environment.merge(extra) { $1 }
        server.process.environment = environment
        server.process.standardOutput = log
        server.process.standardError = log
        try server.process.run()
        LiveServers.started(server.process.processIdentifier)
        return server
    }

    init(logPath: String) { self.logPath = logPath }

    var output: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Polls `/healthz` until it answers 200; fails after 30 s or if the process exits.
    func waitForHealth(port: Int) async throws {
        let url = URL(string: "http://127.0.0.1:\(port)/healthz")!
        for _ in 0..<300 {
            guard process.isRunning else { throw TestSupportError("wahost exited: \(output)") }
            if let (_, response) = try? await URLSession.shared.data(from: url), (response as? HTTPURLResponse)?.statusCode == 200 {
                return
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestSupportError("no /healthz within 30 s: \(output)")
    }

    /// SIGKILL (a crash: no lease release, no goodbye), then waits for the exit.
    func kill() async {
        guard process.isRunning else { return }
        Foundation.kill(process.processIdentifier, SIGKILL)
        await process.exited()
        LiveServers.stopped(process.processIdentifier)
    }

    /// SIGTERM, then waits for the exit.
    func stop() async {
        guard process.isRunning else { return }
        process.terminate()
        await process.exited()
        LiveServers.stopped(process.processIdentifier)
    }

    /// SIGTERM without waiting (for a `defer`): the process exits on its own, or is killed when the tests end.
    func signalStop() {
        if process.isRunning { process.terminate() }
    }
}

/// A free loopback TCP port (bound to port 0, then closed).
func freePort() throws -> Int {
    let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard socket >= 0 else { throw TestSupportError("socket: errno \(errno)") }
    defer { close(socket) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, length) == 0 && getsockname(socket, $0, &length) == 0 }
    }
    guard bound else { throw TestSupportError("bind 127.0.0.1:0: errno \(errno)") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// Every `wahost` child still running when the test process exits is killed then: a test that ends (or fails) before
/// its fire-and-forget cleanup runs leaves no server behind.
enum LiveServers {
    private static let pids = Mutex<Set<pid_t>>([])
    private static let installed: Void = {
        atexit {
            for pid in LiveServers.pids.withLock({ $0 }) { Foundation.kill(pid, SIGKILL) }
        }
    }()

    static func started(_ pid: pid_t) {
        _ = installed
        pids.withLock { _ = $0.insert(pid) }
    }

    static func stopped(_ pid: pid_t) {
        pids.withLock { _ = $0.remove(pid) }
    }
}
