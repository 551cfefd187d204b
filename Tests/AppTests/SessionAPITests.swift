import Foundation
import Logging
import PostgresNIO
import Tenancy
import TestSupport
import Testing
import WhatsApp
import WhatsAppSimulator

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The simulator in this process, and real `wahost serve` processes that trust it, driven only over HTTP.
final class APIRig: @unchecked Sendable {
    let simulator: WhatsAppSimulator
    let url: String
    let dataDirectory: String
    let masterKey = Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
    var databaseURL: String?
    var extraEnvironment: [String: String] = [:]
    var servers: [ServerProcess] = []

    init() async throws {
        simulator = try WhatsAppSimulator()
        url = try await simulator.start()
        dataDirectory = try makeTemporaryDirectory()
    }

    var environment: [String: String] {
        var environment = [
            "WAHOST_WA_URL": url, "WAHOST_WA_ROOT_KEY": simulator.rootPublicKey.map { String(format: "%02x", $0) }.joined(),
            "WAHOST_MASTER_KEY": masterKey, "WAHOST_LEASE_TTL": "5", "WAHOST_LOG_LEVEL": "info",
        ]
        if let databaseURL { environment["WAHOST_DATABASE_URL"] = databaseURL }
        return environment.merging(extraEnvironment) { $1 }
    }

    /// Creates a tenant with the CLI; returns its admin token and OTP secret (nil without MFA).
    func createTenant(_ name: String, mfa: Bool = false) async throws -> (token: String, otpSecret: [UInt8]?) {
        let result = try await WahostBinary.runDetached(
            ["tenant", "create", name, "--data-dir", dataDirectory] + (mfa ? [] : ["--no-mfa"]), environment: environment)
        guard result.status == 0 else { throw TestSupportError("tenant create failed: \(result.stderr)") }
        let object = try WahostBinary.json(result)
        let token = try #require(object["admin_token"] as? String)
        let secret = (object["otp_secret"] as? String).flatMap(Base32.decode)
        return (token, secret)
    }

    /// Starts `wahost serve` on a free port (with `arguments` for that port) and waits for `/healthz`.
    func startServer(arguments: (Int) -> [String] = { _ in [] }) async throws -> (ServerProcess, Int) {
        let port = try freePort()
        let server = try ServerProcess.start(
            arguments: ["serve", "--port", "\(port)", "--data-dir", dataDirectory] + arguments(port), environment: environment)
        servers.append(server)
        try await server.waitForHealth(port: port)
        return (server, port)
    }

    func stopAll() async {
        // Every server is signalled before the first wait: a test process exiting meanwhile leaves none running.
        for server in servers where server.process.isRunning { server.process.terminate() }
        for server in servers { await server.stop() }
        await simulator.stop()
    }
}

/// One HTTP exchange's outcome.
struct HTTPResult {
    let status: Int
    let body: Data
    var headers: [String: String] = [:]
    /// A response header's value, by case-insensitive name.
    func header(_ name: String) -> String? { headers.first { $0.key.lowercased() == name.lowercased() }?.value }
    var json: Any? { try? JSONSerialization.jsonObject(with: body) }
    var object: [String: Any] { json as? [String: Any] ?? [:] }
    var errorCode: String? { (object["error"] as? [String: Any])?["code"] as? String }
    var text: String { String(decoding: body, as: UTF8.self) }
}

/// Sends one request to the server on `port`.
func http(
    _ method: String, _ port: Int, _ path: String, headers: [String: String] = [:], body: Data? = nil
) async throws -> HTTPResult {
    var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
    request.httpMethod = method
    request.timeoutInterval = 30
    for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
    if let body {
        request.httpBody = body
        request.setValue("application/json", forHTTPHeaderField: "content-type")
    }
    let (data, response) = try await URLSession.shared.data(for: request)
    let fields = (response as? HTTPURLResponse)?.allHeaderFields ?? [:]
    let headers = Dictionary(fields.compactMap { key, value in (key as? String).map { ($0, "\(value)") } }, uniquingKeysWith: { $1 })
    return HTTPResult(status: (response as? HTTPURLResponse)?.statusCode ?? 0, body: data, headers: headers)
}

/// Reads the event stream at `path` with curl for `seconds`; the response head comes first in stdout.
func readEventStream(_ port: Int, _ path: String, headers: [String: String], seconds: Int) async throws -> ProcessResult {
    let arguments = ["-sN", "-D", "-", "--max-time", "\(seconds)"] + headers.flatMap { ["-H", "\($0.key): \($0.value)"] }
    return try await runProcessDetached("/usr/bin/curl", arguments + ["http://127.0.0.1:\(port)\(path)"])
}

/// Polls `condition` until it holds or `timeout` passes.
func eventually(timeout: Duration = .seconds(20), _ what: String = "condition", _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if (try? await condition()) == true { return }
        try await Task.sleep(for: .milliseconds(100))
    }
    throw TestSupportError("\(what) not met within \(timeout)")
}

func isConnected(_ port: Int, _ tenant: String) async throws -> Bool {
    try await http("GET", port, "/tenants/\(tenant)/session/status").object["connected"] as? Bool == true
}

/// The code for the current (offset 0) or next (offset 1) TOTP step.
func otp(_ secret: [UInt8], stepOffset: Int64 = 0) -> String {
    TOTP(secret: secret).code(forStep: TOTP.step(at: Date()) + stepOffset)
}

/// Pairs `tenant` by QR through the API and the simulated phone; returns the account user.
func pairByQR(_ rig: APIRig, port: Int, tenant: String, token: String) async throws -> String {
    let qr = try await http("GET", port, "/tenants/\(tenant)/session/qr", headers: ["x-admin-token": token])
    #expect(qr.status == 200, "\(qr.text)")
    let text = try #require(qr.object["qr"] as? String)
    #expect(text.hasPrefix("https://wa.me/settings/linked_devices#"))
    #expect((qr.object["expires_in"] as? Int ?? 0) > 0)
    let jid = try await rig.simulator.scanQRCode(text)
    try await eventually("\(tenant) connected") { try await isConnected(port, tenant) }
    return String(jid.prefix { $0 != ":" && $0 != "@" })
}

@Suite(.serialized) struct SessionAPITests {
    @Test func qrPairingSurvivesSigtermAndKillThenLogoutWipes() async throws {
        let rig = try await APIRig()
        defer { Task { await rig.stopAll() } }
        let (token, _) = try await rig.createTenant("acme")
        var (server, port) = try await rig.startServer()

        let before = try await http("GET", port, "/tenants/acme/session/status")
        #expect(before.status == 200)
        #expect(before.object["connected"] as? Bool == false)
        #expect(before.object["state"] as? String == "stopped")

        let user = try await pairByQR(rig, port: port, tenant: "acme", token: token)
        // Anonymous callers learn whether the session is up, nothing about the account or its errors.
        let anonymous = try await http("GET", port, "/session/status")  // the only tenant
        #expect(anonymous.object["connected"] as? Bool == true)
        #expect(Set(anonymous.object.keys) == ["connected", "state"], "\(anonymous.text)")
        #expect(Set(try await http("GET", port, "/tenants/acme/session/status").object.keys) == ["connected", "state"])
        // The tenant's token shows the full body, on both paths; a wrong token is refused, not downgraded.
        let status = try await http("GET", port, "/session/status", headers: ["x-admin-token": token])
        #expect((status.object["me"] as? String)?.hasPrefix(user) == true, "\(status.text)")
        #expect(status.object.keys.contains("last_error"))
        let canonical = try await http("GET", port, "/tenants/acme/session/status", headers: ["x-admin-token": token])
        #expect((canonical.object["me"] as? String)?.hasPrefix(user) == true)
        #expect(try await http("GET", port, "/session/status", headers: ["x-admin-token": token + "x"]).status == 401)

        let groups = try await http("GET", port, "/tenants/acme/session/groups", headers: ["x-admin-token": token])
        #expect(groups.status == 200)
        let list = try #require(groups.json as? [[String: Any]])
        #expect(list.map { $0["id"] as? String } == WhatsAppSimulator.groupFixture.map(\.id))
        #expect(list.map { $0["subject"] as? String } == WhatsAppSimulator.groupFixture.map(\.subject))
        #expect(list.map { $0["participants"] as? Int } == WhatsAppSimulator.groupFixture.map(\.participants.count))
        let aliasGroups = try await http("GET", port, "/session/groups", headers: ["x-admin-token": token])
        #expect(aliasGroups.status == 200)

        // SIGTERM, restart: logged in again with the stored credentials, no new pairing.
        await server.stop()
        try await eventually("simulator sees the drop") { await rig.simulator.observed.liveConnections[user] == 0 }
        (server, port) = try await rig.startServer()
        try await eventually("restored after SIGTERM") { try await isConnected(port, "acme") }
        var observed = await rig.simulator.observed
        #expect(observed.registrations == 1)
        #expect(observed.logins[user] == 2)

        // kill -9, restart: the stale lease of the dead process is reclaimed at once (same node id).
        await server.kill()
        (server, port) = try await rig.startServer()
        try await eventually(timeout: .seconds(10), "restored after kill -9") { try await isConnected(port, "acme") }
        observed = await rig.simulator.observed
        #expect(observed.registrations == 1)
        #expect(observed.logins[user] == 3)
        #expect(observed.peakConnectionsPerAccount[user] == 1, "never two live connections")

        let logout = try await http("POST", port, "/tenants/acme/session/logout", headers: ["x-admin-token": token])
        #expect(logout.status == 200)
        #expect(logout.object["status"] as? String == "success")
        #expect(logout.object["message"] as? String == "Session cleared.")
        #expect(await rig.simulator.observed.logouts[user] == 1)
        let files = (try? FileManager.default.contentsOfDirectory(atPath: rig.dataDirectory + "/auth/acme")) ?? []
        #expect(files.isEmpty, "auth/acme emptied: \(files)")
        #expect(try await isConnected(port, "acme") == false)
        let again = try await http("POST", port, "/session/logout", headers: ["x-admin-token": token])
        #expect(again.status == 200)
        #expect(again.object["message"] as? String == "Session cleared.")
        await server.stop()
    }

    @Test func codePairingThroughTheAPI() async throws {
        let rig = try await APIRig()
        defer { Task { await rig.stopAll() } }
        let (token, _) = try await rig.createTenant("acme")
        let (_, port) = try await rig.startServer()
        let response = try await http(
            "POST", port, "/tenants/acme/session/pairing-code", headers: ["x-admin-token": token], body: Data(#"{"number": "15551234567"}"#.utf8))
        #expect(response.status == 200, "\(response.text)")
        let code = try #require(response.object["code"] as? String)
        #expect(code.count == 8)
        _ = try await rig.simulator.enterLinkCode(code)
        try await eventually("connected by code") { try await isConnected(port, "acme") }
        let groups = try await http("GET", port, "/session/groups", headers: ["x-admin-token": token])
        #expect((groups.json as? [Any])?.count == WhatsAppSimulator.groupFixture.count)
    }

    @Test func tenantQRCommandPrintsTheQRCodeOfTheRunningServer() async throws {
        let rig = try await APIRig()
        defer { Task { await rig.stopAll() } }
        let (token, _) = try await rig.createTenant("acme")
        let (_, port) = try await rig.startServer()
        let result = try await WahostBinary.runDetached(["tenant", "qr", "acme", "--url", "http://127.0.0.1:\(port)", "--token", token])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("█"))
        #expect(result.stdout.contains("Linked devices"))
        let refused = try await WahostBinary.runDetached(["tenant", "qr", "acme", "--url", "http://127.0.0.1:\(port)", "--token", "wah_acme_wrong"])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("admin token invalid"))
    }

    @Test func replacedIsNotRetriedAndDeviceRemovedWipes() async throws {
        let rig = try await APIRig()
        defer { Task { await rig.stopAll() } }
        let (tokenA, _) = try await rig.createTenant("alpha")
        let (tokenB, _) = try await rig.createTenant("bravo")
        let (_, port) = try await rig.startServer()
        let alpha = try await pairByQR(rig, port: port, tenant: "alpha", token: tokenA)
        let bravo = try await pairByQR(rig, port: port, tenant: "bravo", token: tokenB)

        let logins = await rig.simulator.observed.logins[alpha]
        await rig.simulator.sendStreamError(toAccount: alpha, code: nil, conflict: "replaced")
        try await eventually("alpha replaced") {
            try await http("GET", port, "/tenants/alpha/session/status").object["state"] as? String == "replaced"
        }
        try await Task.sleep(for: .seconds(30))
        #expect(await rig.simulator.observed.logins[alpha] == logins, "no reconnect attempt within 30 s after replaced")

        await rig.simulator.removeDevice(ofAccount: bravo)
        try await eventually("bravo logged out") {
            try await http("GET", port, "/tenants/bravo/session/status").object["state"] as? String == "logged_out"
        }
        let files = (try? FileManager.default.contentsOfDirectory(atPath: rig.dataDirectory + "/auth/bravo")) ?? []
        #expect(files.isEmpty, "credentials wiped: \(files)")
        let groups = try await http("GET", port, "/tenants/bravo/session/groups", headers: ["x-admin-token": tokenB])
        #expect(groups.status == 409)
    }

    @Test func isolationOTPAndBadInputAreRefusedWithJSONErrors() async throws {
        let rig = try await APIRig()
        defer { Task { await rig.stopAll() } }
        let (tokenA, secretA) = try await rig.createTenant("alpha", mfa: true)
        let (tokenB, _) = try await rig.createTenant("bravo")
        let secret = try #require(secretA)
        let (_, port) = try await rig.startServer()

        // Tenant isolation: alpha's token on bravo's endpoints.
        for (method, path) in [("GET", "groups"), ("GET", "qr"), ("POST", "logout")] {
            let response = try await http(method, port, "/tenants/bravo/session/\(path)", headers: ["x-admin-token": tokenA, "x-otp": otp(secret)])
            #expect(response.status == 403, "\(path): \(response.text)")
            #expect(response.errorCode == "token_wrong_tenant")
        }
        #expect(try await http("GET", port, "/tenants/bravo/session/status").object["state"] as? String == "stopped", "bravo untouched")
        #expect(try await http("GET", port, "/tenants/bravo/session/status", headers: ["x-admin-token": tokenA]).status == 403)
        #expect(try await http("GET", port, "/session/status", headers: ["x-admin-token": tokenA, "x-tenant": "bravo"]).status == 403)

        // Tokens.
        #expect(try await http("GET", port, "/tenants/bravo/session/groups").status == 401)
        #expect(try await http("GET", port, "/tenants/bravo/session/groups", headers: ["x-admin-token": "wah_bravo_nope"]).status == 401)
        #expect(try await http("GET", port, "/tenants/nobody/session/status").status == 404)
        #expect(try await http("GET", port, "/session/status").errorCode == "tenant_required")
        #expect(try await http("GET", port, "/session/status", headers: ["x-tenant": "bravo"]).status == 200)

        // OTP on qr, pairing-code and logout: missing, wrong and replayed codes refused; a fresh one accepted.
        for (method, path) in [("GET", "qr"), ("POST", "pairing-code"), ("POST", "logout")] {
            let body = method == "POST" ? Data(#"{"number":"15551234567"}"#.utf8) : nil
            let missing = try await http(method, port, "/tenants/alpha/session/\(path)", headers: ["x-admin-token": tokenA], body: body)
            #expect(missing.status == 403)
            #expect(missing.errorCode == "otp_required")
            let wrong = try await http(
                method, port, "/tenants/alpha/session/\(path)", headers: ["x-admin-token": tokenA, "x-otp": "000000"], body: body)
            #expect(wrong.status == 403)
            #expect(wrong.errorCode == "otp_invalid")
        }
        let code = otp(secret)
        let fresh = try await http("POST", port, "/tenants/alpha/session/logout", headers: ["x-admin-token": tokenA, "x-otp": code])
        #expect(fresh.status == 200, "\(fresh.text)")
        let replayed = try await http("POST", port, "/tenants/alpha/session/logout", headers: ["x-admin-token": tokenA, "x-otp": code])
        #expect(replayed.status == 403)
        #expect(replayed.errorCode == "otp_invalid")
        let next = try await http("GET", port, "/tenants/alpha/session/qr", headers: ["x-admin-token": tokenA, "x-otp": otp(secret, stepOffset: 1)])
        #expect(next.status == 200, "a fresh code for the next step: \(next.text)")

        // Bad input: each a 4xx JSON error, and the server keeps serving.
        let path = "/tenants/bravo/session/pairing-code"
        let headers = ["x-admin-token": tokenB]
        let cases: [(Data, Int, String)] = [
            (Data("{not json".utf8), 400, "invalid_json"),
            (Data("{}".utf8), 400, "number_required"),
            (Data(#"{"number": "12ab34"}"#.utf8), 400, "number_invalid"),
            (Data(#"{"number": "+15551234567"}"#.utf8), 400, "number_invalid"),
            (Data(#"{"number": ["1"]}"#.utf8), 400, "number_invalid"),
            (Data(repeating: UInt8(ascii: "1"), count: 200_000), 413, "body_too_large"),
        ]
        for (body, status, code) in cases {
            let response = try await http("POST", port, path, headers: headers, body: body)
            #expect(response.status == status, "\(code): \(response.text)")
            #expect(response.errorCode == code, "\(response.text)")
        }
        let unknownRoute = try await http("GET", port, "/tenants/bravo/session/nope")
        #expect(unknownRoute.status == 404)
        #expect(unknownRoute.errorCode != nil)
        #expect(try await http("GET", port, "/healthz").status == 200, "still serving")
        #expect(try await http("GET", port, "/readyz").status == 200)
        let metrics = try await http("GET", port, "/metrics")
        #expect(metrics.text.contains("wahost_sessions"))
    }

    @Test func clusterModeGivesEachTenantOneOwnerAndTakesOverAfterKill() async throws {
        guard ExternalTools.postgresEnabled else { return }
        let rig = try await APIRig()
        defer { Task { await rig.stopAll() } }
        rig.databaseURL = try await makePostgresDatabase()
        let names = ["t1", "t2", "t3", "t4"]
        var tokens: [String: String] = [:]
        for name in names { tokens[name] = try await rig.createTenant(name).token }
        let (first, portA) = try await rig.startServer()
        let (_, portB) = try await rig.startServer()
        var users: [String] = []
        for (index, name) in names.enumerated() {
            // Pair half through each node.
            users.append(try await pairByQR(rig, port: index.isMultiple(of: 2) ? portA : portB, tenant: name, token: tokens[name]!))
        }
        for name in names {
            try await eventually("\(name) connected as seen by both nodes") {
                let a = try await isConnected(portA, name)
                let b = try await isConnected(portB, name)
                return a && b
            }
        }
        var observed = await rig.simulator.observed
        for user in users { #expect(observed.liveConnections[user] == 1) }

        await first.kill()
        let killedAt = ContinuousClock.now
        // The survivor's view of a dead owner's lease says "connected" until the lease expires; the simulator
        // counts the real connections.
        for (name, user) in zip(names, users) {
            try await eventually(timeout: .seconds(25), "\(name) connected by the survivor") {
                let status = try await http("GET", portB, "/tenants/\(name)/session/status").object
                let live = await rig.simulator.observed.liveConnections[user]
                return status["connected"] as? Bool == true && live == 1
            }
        }
        #expect(ContinuousClock.now - killedAt < .seconds(15), "within lease TTL (5 s) + 10 s")
        observed = await rig.simulator.observed
        for user in users {
            #expect(observed.liveConnections[user] == 1)
            #expect(observed.peakConnectionsPerAccount[user] == 1, "never two live connections for \(user)")
        }
        #expect(observed.registrations == names.count)
    }
}

/// A new, empty PostgreSQL database on the server `./ops/test` started; returns its URL.
func makePostgresDatabase() async throws -> String {
    guard let server = ExternalTools.postgres else { throw TestSupportError("POSTGRES_* is not set; ./ops/test starts PostgreSQL") }
    let name = "wahost_api_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
    let configuration = PostgresClient.Configuration(
        host: server.host, port: server.port, username: server.user, password: nil, database: server.database, tls: .disable)
    let client = PostgresClient(configuration: configuration)
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { await client.run() }
        try await client.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"))
        group.cancelAll()
    }
    return "postgres://\(server.user)@\(server.host):\(server.port)/\(name)"
}
