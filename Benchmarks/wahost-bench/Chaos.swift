import App
import ArgumentParser
import Foundation
import Hummingbird
import Logging
import Synchronization
import Tenancy
import WahostBasics
import Webhooks

/// `chaos --tenants N --cycles C`: `kill -9` of `serve` at random moments while peers message its sessions and their
/// webhooks deliver; with `--nodes 2|3` on PostgreSQL, nodes of a cluster are killed or stopped in turn (failovers).
/// Afterwards every session must be connected again without pairing and never twice at once, every message the peers
/// sent must be in its tenant's event log exactly once, and every one must have reached the webhook receiver.
struct Chaos: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Crash cycles and failovers of `wahost serve` under message load; fails if a promise breaks.")

    @Option(help: "Tenants, each paired, messaged and with a webhook.") var tenants = 5
    @Option(help: "Kills of `serve` (one node), or failovers (several).") var cycles = 50
    @Option(help: "Longest a `serve` runs before its kill, in seconds.") var cycleSeconds = 3.0
    @Option(help: "Texts per second the peers send, across all tenants.") var rate = 20
    @Option(help: "Seed of the kill moments (0: a random seed, printed).") var seed: UInt64 = 0
    @Option(help: "Nodes sharing --database-url; above 1, each cycle kills (or stops) one and waits for the others to take over.")
    var nodes = 1
    @Option(help: "The cluster's PostgreSQL URL (an empty database), for --nodes above 1.") var databaseURL: String?
    @Option(help: "Network faults (drops, stream errors, a few terminal ones) applied after the kills, each after up to --cycle-seconds.")
    var networkFaults = 0

    func validate() throws {
        guard (1...3).contains(nodes) else { throw ValidationError("--nodes is 1, 2 or 3") }
        if nodes > 1, databaseURL == nil { throw ValidationError("--nodes above 1 needs --database-url postgres://…") }
    }

    func run() async throws {
        let receiver = try await WebhookCounter.start()
        defer { receiver.stop() }
        let rig = try await BenchRig(count: tenants, databaseURL: databaseURL)
        defer { rig.stop() }
        var environment = ["WAHOST_ALLOW_PRIVATE_WEBHOOKS": "1", "WAHOST_WEBHOOK_BACKOFF_CAP_SECONDS": "1"]
        // Leases are renewed every third of the TTL: 10 s leaves a loaded machine room for a late renewal.
        if nodes > 1 { environment["WAHOST_LEASE_TTL"] = "10" }
        try await configureWebhooks(rig, receiverPort: receiver.port)
        var servers: [(process: ChildProcess, port: Int)] = []
        for node in 0..<nodes { servers.append(try await rig.startServer(extraEnvironment: environment.merging(["WAHOST_NODE_ID": "chaos-\(node)"]) { $1 })) }
        _ = try await rig.pairAll(port: servers[0].port, concurrency: 8)
        try await rig.waitForPreKeys()
        let registrationsBefore = try await rig.simulatorState()["registrations"] as? Int ?? 0

        let sent = SentTexts()
        let sender = Task { try await sendTexts(rig, into: sent) }
        let seed = self.seed == 0 ? UInt64.random(in: 1...UInt64.max) : self.seed
        FileHandle.standardError.write(Data("chaos: seed \(seed)\n".utf8))
        var generator = SeededGenerator(seed: seed)
        var broken: [String] = []
        var reconnectChecks = 0
        var reconnectFailures = 0
        var moved = 0
        for cycle in 0..<cycles {
            // One node: half of the kills land in the first second after the start (restore, login, prekey upload, the
            // offline queue's messages being stored and acked), half anywhere in the cycle. Several: the node running
            // the most sessions is killed (even cycles), or a random one is stopped with SIGTERM (odd), and the others
            // must take its sessions over.
            let window = nodes == 1 && cycle % 2 == 0 ? min(1, cycleSeconds) : cycleSeconds
            try await Task.sleep(for: .milliseconds(Int64(Double.random(in: 0...window, using: &generator) * 1000)))
            var victim = Int.random(in: 0..<nodes, using: &generator)
            var moving: [String] = []
            var loginsBefore: [String: Int] = [:]
            if nodes > 1 {
                loginsBefore = try await rig.simulatorState()["logins"] as? [String: Int] ?? [:]
                var running: [[String]] = []
                for (node, server) in servers.enumerated() { running.append(try await rig.tenantsRunning(onNodeAt: server.port, nodeID: "chaos-\(node)")) }
                if cycle % 2 == 0, let busiest = running.indices.max(by: { running[$0].count < running[$1].count }) { victim = busiest }
                moving = running[victim]
            }
            if nodes == 1 || cycle % 2 == 0 {
                kill(servers[victim].process.pid, SIGKILL)
                servers[victim].process.process.waitUntilExit()
            } else if try await !stop(servers[victim].process, within: .seconds(30)) {
                broken.append("node chaos-\(victim) did not stop within 30 s of SIGTERM")
            }
            if nodes > 1 {
                // The sessions the victim ran must log in again on the other nodes, each with one connection.
                reconnectChecks += 1
                moved += moving.count
                if try await !rig.waitTakenOver(moving, loginsBefore: loginsBefore, timeout: .seconds(60)) { reconnectFailures += 1 }
            }
            let node = ["WAHOST_NODE_ID": "chaos-\(victim)"]
            servers[victim] = try await rig.startServer(extraEnvironment: environment.merging(node) { $1 })
            if nodes == 1, cycle % 5 == 4 {
                reconnectChecks += 1
                if try await rig.waitConnected(timeout: .seconds(60)) != tenants { reconnectFailures += 1 }
            }
        }
        var network = NetworkFaultOutcome()
        var sentBeforeFaults = 0
        if networkFaults > 0 {
            // Everything sent so far is logged before a session may end for good, so the kills' texts are all checked.
            sentBeforeFaults = sent.all.count
            _ = try await waitForEvents(rig, port: servers[0].port, expected: Array(sent.all.prefix(sentBeforeFaults)), timeout: .seconds(120))
            network = try await applyNetworkFaults(rig, port: servers[0].port, sent: sent, generator: &generator)
        }
        let running = tenants - network.terminal.count
        let connected = try await rig.waitConnected(expected: running, timeout: .seconds(120))
        sender.cancel()
        if case .failure(let error) = await sender.result { broken.append("the texts stopped: \(error)") }
        // Texts to a session ended for good (replaced, device removed) after the faults began may never be delivered.
        let messages = sent.all.enumerated().filter { $0.offset < sentBeforeFaults || !network.terminal.contains($0.element.tenant) }.map(\.element)
        let live = try await rig.simulatorState()["liveConnections"] as? [String: Int] ?? [:]
        for (tenant, _) in rig.tokens {
            let expected = network.terminal.contains(tenant) ? 0 : 1
            if let user = rig.accounts[tenant], live[user, default: 0] != expected {
                broken.append("\(tenant) has \(live[user, default: 0]) live connections, not \(expected)")
            }
        }
        let logged = try await waitForEvents(rig, port: servers[0].port, expected: messages, timeout: .seconds(120))
        let deadline = ContinuousClock.now + .seconds(60)
        while receiver.missing(messages.map(\.id)) > 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(200)) }
        let state = try await rig.simulatorState()
        let repairings = (state["registrations"] as? Int ?? 0) - registrationsBefore
        let missing = messages.filter { logged[$0.id] == nil }.count
        let duplicated = logged.values.filter { $0 > 1 }.count
        let webhookMissing = receiver.missing(messages.map(\.id))
        let peak = (state["peakConnectionsPerAccount"] as? [String: Int] ?? [:]).values.max() ?? 0
        printJSONLine([
            "benchmark": "chaos", "tenants": tenants, "nodes": nodes, "kills": cycles, "seed": "\(seed)", "connected_at_end": connected,
            "reconnect_checks": reconnectChecks, "reconnect_failures": reconnectFailures, "re_pairings": repairings,
            "messages_sent": messages.count, "events_missing": missing, "events_duplicated": duplicated,
            "webhook_missing": webhookMissing, "webhook_redelivered": receiver.redelivered, "peak_connections_per_account": peak,
            "sessions_moved": moved, "network_faults": network.faults, "sessions_ended": network.terminal.count,
        ])
        broken += network.broken
        if connected != running || reconnectFailures > 0 {
            broken.append("sessions not connected again (\(reconnectFailures) of \(reconnectChecks) checks failed, \(connected) of \(running) at the end)")
        }
        if peak > 1 { broken.append("an account had \(peak) live connections at once") }
        if repairings > 0 { broken.append("\(repairings) sessions paired again") }
        if missing > 0 || duplicated > 0 { broken.append("\(missing) messages missing from and \(duplicated) duplicated in the event logs") }
        if webhookMissing > 0 { broken.append("\(webhookMissing) messages never reached the webhook") }
        if messages.isEmpty { broken.append("no message was sent") }
        if nodes > 1, moved == 0 { broken.append("no failover moved a session") }
        if !broken.isEmpty { throw BenchError("promises broken (seed \(seed)): " + broken.joined(separator: "; ")) }
    }

    /// Waits for a SIGTERM'd `serve` to exit; after `deadline`, kills it and returns false.
    private func stop(_ server: ChildProcess, within deadline: Duration) async throws -> Bool {
        server.process.terminate()
        let end = ContinuousClock.now + deadline
        while server.process.isRunning, ContinuousClock.now < end { try await Task.sleep(for: .milliseconds(50)) }
        guard server.process.isRunning else { return true }
        kill(server.pid, SIGKILL)
        server.process.waitUntilExit()
        return false
    }

    /// A webhook for every tenant, to the receiver, for messages.
    private func configureWebhooks(_ rig: BenchRig, receiverPort: Int) async throws {
        var logger = Logger(label: "wahost.bench")
        logger.logLevel = .error
        var configuration = WahostConfiguration(dataDirectory: rig.directory, databaseURL: rig.databaseURL, masterKeyBase64: rig.masterKey)
        configuration.allowPrivateWebhooks = true
        let services = try await WahostServices.open(configuration, logger: logger)
        for (name, _) in rig.tokens {
            _ = try await services.webhooks.put(for: try TenantName(name), url: "http://127.0.0.1:\(receiverPort)/hook", events: ["message"])
        }
        await services.close()
    }

    /// Peers text the tenants' accounts in turn at `rate` per second, whether `serve` is up or not (the simulator
    /// queues them until the account's device acks), recording every id the simulator accepted.
    private func sendTexts(_ rig: BenchRig, into sent: SentTexts) async throws {
        let names = rig.tokens.map(\.0)
        var index = 0
        while !Task.isCancelled {
            let tenant = names[index % names.count]
            if sent.isStopped(tenant) {
                index += 1
                try? await Task.sleep(for: .milliseconds(10))
                continue
            }
            guard let account = rig.accounts[tenant] else { throw BenchError("no account for \(tenant)") }
            let peer = "1555888" + String(format: "%04d", index % names.count)
            let status: Int
            let body: [String: Any]
            do { (status, body) = try await request("POST", rig.control + "/peers/\(peer)/messages", body: ["to": account, "text": "chaos \(index)"]) } catch {
                if Task.isCancelled { return }
                throw error
            }
            if status == 200, let id = body["id"] as? String { sent.add(tenant: tenant, id: id) }
            index += 1
            try? await Task.sleep(for: .milliseconds(1000 / max(1, rate)))
        }
    }

    /// How often each sent message id appears in its tenant's event log, once every sent one is there or at `timeout`.
    private func waitForEvents(
        _ rig: BenchRig, port: Int, expected: [(tenant: String, id: String)], timeout: Duration
    ) async throws -> [String: Int] {
        let deadline = ContinuousClock.now + timeout
        while true {
            var counts: [String: Int] = [:]
            for (name, token) in rig.tokens {
                var after = 0
                while true {
                    let (status, page) = try await request(
                        "GET", "http://127.0.0.1:\(port)/tenants/\(name)/events?limit=1000&after=\(after)",
                        headers: ["x-admin-token": token, "accept": "application/json"])
                    guard status == 200 else { throw BenchError("events of \(name): \(status) \(page)") }
                    let events = page["events"] as? [[String: Any]] ?? []
                    for event in events where event["type"] as? String == "message" {
                        if let id = (event["data"] as? [String: Any])?["id"] as? String { counts[id, default: 0] += 1 }
                    }
                    guard events.count == 1000, let last = page["last_id"] as? Int else { break }
                    after = last
                }
            }
            if expected.allSatisfy({ counts[$0.id] != nil }) || ContinuousClock.now >= deadline { return counts }
            try await Task.sleep(for: .milliseconds(500))
        }
    }
}

/// A webhook receiver in this process that counts deliveries per message id.
final class WebhookCounter: Sendable {
    let port: Int
    private let counts = Mutex<[String: Int]>([:])
    private let task: Mutex<Task<Void, any Error>?>

    private init(port: Int) {
        self.port = port
        task = Mutex(nil)
    }

    static func start() async throws -> WebhookCounter {
        let counter = WebhookCounter(port: try freeLoopbackPort())
        let router = Router()
        router.post("hook") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 1 << 20)
            let object = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any]
            if let id = (object?["data"] as? [String: Any])?["id"] as? String { counter.counts.withLock { $0[id, default: 0] += 1 } }
            return Response(status: .ok)
        }
        var quiet = Logger(label: "bench.receiver")
        quiet.logLevel = .error
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: counter.port)), logger: quiet)
        counter.task.withLock { $0 = Task { try await app.runService(gracefulShutdownSignals: []) } }
        return counter
    }

    /// How many of `ids` never arrived.
    func missing(_ ids: [String]) -> Int { counts.withLock { counts in ids.filter { counts[$0] == nil }.count } }

    /// Deliveries beyond the first of a message (at-least-once allows them).
    var redelivered: Int { counts.withLock { $0.values.reduce(0) { $0 + max(0, $1 - 1) } } }

    func stop() { task.withLock { $0?.cancel() } }
}

/// The texts the simulator accepted, with the tenant each went to.
final class SentTexts: Sendable {
    private let list = Mutex<[(tenant: String, id: String)]>([])
    private let stopped = Mutex<Set<String>>([])
    func add(tenant: String, id: String) { list.withLock { $0.append((tenant, id)) } }
    /// No more texts to this tenant (its session ended for good).
    func stop(_ tenant: String) { _ = stopped.withLock { $0.insert(tenant) } }
    func isStopped(_ tenant: String) -> Bool { stopped.withLock { $0.contains(tenant) } }
    var all: [(tenant: String, id: String)] { list.withLock { $0 } }
}
