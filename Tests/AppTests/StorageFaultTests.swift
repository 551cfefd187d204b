import Foundation
import TestSupport
import Testing
import WhatsAppSimulator

/// Issue 19's storage faults on a real `wahost serve`: PostgreSQL stopped for 30 s, the SQLite file locked by another
/// process for 30 s, the data directory's file system full. Requests fail clearly (a JSON 503 with `retry_after`,
/// never a hang), texts that arrive meanwhile are logged once after the fault, and the service resumes by itself.
@Suite(.serialized) struct StorageFaultTests {
    static let outage = Duration.seconds(30)

    /// Pairs `acme`, runs `fault` (which returns its end) while a peer texts the account and the API is probed, then
    /// checks the recovery: connected without pairing, every text on `/events` once, requests served, logs brief.
    func survive(
        _ rig: APIRig, what: String, serverArguments: [String] = [], beforeStart: () async throws -> Void = {},
        fault: () async throws -> () async throws -> Void
    ) async throws {
        rig.extraEnvironment["WAHOST_ALLOW_PRIVATE_WEBHOOKS"] = "1"
        let (token, _) = try await rig.createTenant("acme")
        let operatorToken = try await ClusterForwardingTests().operatorToken(rig)
        try await beforeStart()
        var (server, port) = try await rig.startServer { _ in serverArguments }
        let account = try await pairByQR(rig, port: port, tenant: "acme", token: token)
        try await eventually("prekeys uploaded") { await rig.simulator.observed.preKeys[account] ?? 0 > 0 }
        let hook = try await http(
            "PUT", port, "/tenants/acme/webhook", headers: ["x-admin-token": token], body: Data(#"{"url": "http://127.0.0.1:9/hook", "events": ["message"]}"#.utf8))
        #expect(hook.status == 200, "\(hook.text)")
        var texts = [try await rig.simulator.sendText(from: "15557770001", to: account, text: "before")]
        try await eventually("the first text logged") { try await loggedTexts(port, token) == texts }
        let registrations = await rig.simulator.observed.registrations

        let end = try await fault()
        var answers = OutageAnswers()
        let faultEnds = ContinuousClock.now + Self.outage
        var sequence = 0
        while ContinuousClock.now < faultEnds {
            sequence += 1
            texts.append(try await rig.simulator.sendText(from: "15557770001", to: account, text: "during \(sequence)"))
            await answers.probe(port, tenant: "acme", token: token, operatorToken: operatorToken)
            try await Task.sleep(for: .seconds(1))
        }
        let ready = try await http("GET", port, "/readyz")
        try await end()
        texts.append(try await rig.simulator.sendText(from: "15557770001", to: account, text: "after"))

        #expect(server.process.isRunning, "\(what): serve is still running")
        #expect(answers.wrong.isEmpty, "\(what): every answer a success or a clear refusal: \(answers.wrong.prefix(5))")
        #expect(!answers.refusals.isEmpty, "\(what): the fault was seen (\(answers.calls) calls)")
        // Only a PostgreSQL outage fails the readiness ping; SQLite reads go on through a lock or a full disk, so there
        // readiness turns 503 only once the failing lease renewals stopped the sessions (timing-dependent under load).
        #expect(ready.status == 503 || what != "PostgreSQL stopped", "\(what): not ready while the database is away: \(ready.text)")
        try await eventually(timeout: .seconds(120), "\(what): every text logged after the fault") {
            try await loggedTexts(port, token).count >= texts.count
        }
        let logged = try await loggedTexts(port, token)
        #expect(logged == texts, "\(what): each text once, in order: \(logged.count) logged, \(texts.count) sent")
        try await eventually(timeout: .seconds(30), "\(what): connected again") { try await isConnected(port, "acme") }
        try await eventually(timeout: .seconds(30), "\(what): ready again") { try await http("GET", port, "/readyz").status == 200 }
        let sent = try await http(
            "POST", port, "/tenants/acme/messages", headers: ["x-admin-token": token], body: Data(#"{"to": "15557770002", "text": "back"}"#.utf8))
        #expect(sent.status == 201, "\(what): sending works again: \(sent.text)")
        let log = server.output
        #expect(!log.contains("Fatal error") && !log.contains("Stack dump"), "\(what): no crash")
        let outageLines = log.split(separator: "\n").filter { $0.contains("storage unavailable") }
        #expect(outageLines.count >= 1 && outageLines.count <= 10, "\(what): the outage logged, once per component: \(outageLines.count) lines")
        #expect(log.contains("storage available again"), "\(what): the recovery logged")

        // Every credential record opens: a restart logs in with them, without pairing.
        let logins = await rig.simulator.observed.logins[account, default: 0]
        await server.stop()
        (server, port) = try await rig.startServer { _ in serverArguments }
        try await eventually(timeout: .seconds(30), "\(what): logged in after a restart") {
            let loggedIn = await rig.simulator.observed.logins[account, default: 0] > logins
            guard loggedIn else { return false }
            return try await isConnected(port, "acme")
        }
        #expect(await rig.simulator.observed.registrations == registrations, "\(what): nothing paired again")
        #expect(await rig.simulator.observed.peakConnectionsPerAccount[account] == 1, "\(what): never two connections")
        let loggedAfterRestart = try await loggedTexts(port, token)
        #expect(loggedAfterRestart == texts, "\(what): still each text once: \(loggedAfterRestart.count) of \(texts.count), \(Set(loggedAfterRestart).count) distinct")
    }

    func loggedTexts(_ port: Int, _ token: String) async throws -> [String] {
        let page = try await http("GET", port, "/tenants/acme/events?limit=1000", headers: ["x-admin-token": token, "accept": "application/json"])
        guard page.status == 200 else { throw TestSupportError("events: \(page.status)") }
        let events = page.object["events"] as? [[String: Any]] ?? []
        let received = events.filter { $0["type"] as? String == "message" }.compactMap { $0["data"] as? [String: Any] }.filter { $0["from_me"] as? Bool != true }
        return received.compactMap { $0["id"] as? String }
    }

    @Test func postgresStoppedForThirtySeconds() async throws {
        guard let binaries = ThrowawayPostgres.installedBinaries else {
            #expect(!ExternalTools.required, "PostgreSQL is not installed")
            return
        }
        let postgres = try await ThrowawayPostgres(binaries: binaries)
        defer { postgres.destroy() }
        let rig = try await APIRig()
        defer { Task { await rig.stopAll() } }
        rig.databaseURL = postgres.url
        try await survive(rig, what: "PostgreSQL stopped") {
            try await postgres.stop()
            return { try await postgres.start() }
        }
        await rig.stopAll()
    }

    @Test func sqliteLockedByAnotherProcessForThirtySeconds() async throws {
        let rig = try await APIRig()
        defer { Task { await rig.stopAll() } }
        try await survive(rig, what: "SQLite locked") {
            let lock = try SQLiteLockHolder(path: rig.dataDirectory + "/system.db")
            return { lock.release() }
        }
        await rig.stopAll()
    }

    @Test func dataDirectoryFull() async throws {
        let rig = try await APIRig()
        defer { Task { await rig.stopAll() } }
        guard let disk = try SmallFileSystem(on: rig.dataDirectory, megabytes: 64) else {
            print("StorageFaultTests.dataDirectoryFull: SKIPPED, cannot mount a tmpfs here (needs root and mount permission)")
            return
        }
        defer { disk.unmount() }
        try await survive(rig, what: "disk full") {
            try disk.fill()
            return { try disk.free() }
        }
        await rig.stopAll()
    }
}
