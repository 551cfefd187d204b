import App
import ArgumentParser
import Foundation
import Hummingbird
import Logging
import Synchronization
import Tenancy
import TestSupport
import WahostBasics
import Webhooks

/// `chaos --tenants N --cycles C`: `kill -9` of `serve` at random moments while peers message its sessions and their
/// webhooks deliver; with `--nodes 2|3` on PostgreSQL, nodes of a cluster are killed or stopped in turn (failovers,
/// with the cluster checks of ChaosFailover.swift). Afterwards every session must be connected again without pairing
/// and never twice at once, every message the peers sent must be in its tenant's event log exactly once, and every
/// one must have reached the webhook receiver.
struct Chaos: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Crash cycles and failovers of `wahost serve` under message load; fails if a promise breaks.")

    @Option(help: "Tenants, each paired, messaged and with a webhook.") var tenants = 5
    @Option(help: "Kills of `serve` (one node), or failovers (several).") var cycles = 50
    @Option(help: "Longest a `serve` runs before its kill, in seconds.") var cycleSeconds = 3.0
    @Option(help: "Texts per second the peers send, across all tenants.") var rate = 20
    @Option(help: "Seed of the kill moments (0: a random seed, printed).") var seed: UInt64 = 0
    @Option(help: "Nodes sharing --database-url (each its own data directory); above 1, each cycle kills or stops one and times the takeover.")
    var nodes = 1
    @Option(help: "The cluster's PostgreSQL URL (an empty database), for --nodes above 1.") var databaseURL: String?
    @Option(help: "Network faults (drops, stream errors, a few terminal ones) applied after the kills, each after up to --cycle-seconds.")
    var networkFaults = 0
    @Option(help: "Divides serve's keepalive and reconnect backoff timings (WAHOST_TIME_SCALE, 1-1000): D seconds of faults stand for D × scale.")
    var timeScale = 1.0

    @Option(help: "With one node: new tenants paired after the kills, each with a kill -9 during its pairing.")
    var pairingKills = 0
    @Option(help: "With one node: kills aimed at Signal store writes, a prekey upload and webhook outbox commits, in turn (ChaosAimed.swift).")
    var aimedKills = 0
    @Option(help: "Storage faults after the kills or failovers: system.db locked, the data directory full, PostgreSQL stopped.")
    var storageFaults = 0
    @Option(help: "Seconds each storage fault lasts.") var storageFaultSeconds = 30.0
    @Option(help: "The PGDATA of --database-url's server, for --storage-faults to stop and start it.") var postgresDataDir: String?

    @Option(help: "With --nodes: tenants whose every endpoint is called through a node that does not run them, each cycle.")
    var probeTenants = 3
    @Flag(help: "With --nodes: start one node more after the failovers; fails unless it runs a session within --join-seconds.")
    var joinNode = false
    @Option(help: "Seconds the joined node gets to take its share (the wait ends once it has it).") var joinSeconds = 120
    @Option(help: "With --nodes: the nodes' lease TTL in seconds (WAHOST_LEASE_TTL; renewed every third of it).") var leaseTTL = 10

    func validate() throws {
        guard (1...3).contains(nodes) else { throw ValidationError("--nodes is 1, 2 or 3") }
        if nodes > 1, databaseURL == nil { throw ValidationError("--nodes above 1 needs --database-url postgres://…") }
        if joinNode, nodes == 1 { throw ValidationError("--join-node needs --nodes 2 or 3") }
        if pairingKills > 0 || aimedKills > 0, nodes > 1 { throw ValidationError("--pairing-kills and --aimed-kills need one node") }
        if storageFaults > 0, nodes > 1, postgresDataDir == nil { throw ValidationError("--storage-faults with --nodes needs --postgres-data-dir") }
        guard (1...1000).contains(timeScale) else { throw ValidationError("--time-scale is 1-1000") }
        guard (3...3600).contains(leaseTTL) else { throw ValidationError("--lease-ttl is 3-3600 seconds") }
    }

    func run() async throws {
        let receiver = try await WebhookCounter.start()
        defer { receiver.stop() }
        let rig = try await BenchRig(count: tenants, databaseURL: databaseURL)
        defer { rig.stop() }
        try await configureWebhooks(rig, receiverPort: receiver.port)
        let seed = self.seed == 0 ? UInt64.random(in: 1...UInt64.max) : self.seed
        FileHandle.standardError.write(Data("chaos: seed \(seed)\n".utf8))
        var generator = SeededGenerator(seed: seed)
        var environment = ["WAHOST_ALLOW_PRIVATE_WEBHOOKS": "1", "WAHOST_WEBHOOK_BACKOFF_CAP_SECONDS": "1", "WAHOST_TIME_SCALE": "\(timeScale)"]
        var report: [String: Any] = ["benchmark": "chaos", "tenants": tenants, "nodes": nodes, "kills": cycles, "seed": "\(seed)"]
        var broken: [String] = []
        let sent = SentTexts()
        let port: Int
        var registrationsBefore: Int
        let sender: Task<Void, any Error>
        let stopSending = StopFlag()
        var reconnect = (checks: 0, failures: 0)
        var credentialsIn: String?
        var replacements = ReplacementLedger()
        let faultable = nodes == 1 && storageFaults > 0 && databaseURL == nil ? Self.faultableDataDirectory(copying: rig.directory) : nil
        defer { if let faultable { _ = spawnAndWait(["/bin/sh", "-c", "umount -l '\(faultable)' && rmdir '\(faultable)'"]) } }
        if nodes == 1 {
            let dataDirectory = faultable ?? rig.directory
            credentialsIn = dataDirectory
            var server = try await rig.startServer(extraEnvironment: environment, dataDirectory: dataDirectory)
            _ = try await rig.pairAll(port: server.port, concurrency: 8)
            try await rig.waitForPreKeys()
            registrationsBefore = try await rig.simulatorState()["registrations"] as? Int ?? 0
            sender = Task { try await sendTexts(rig, into: sent, until: stopSending) }
            for cycle in 0..<cycles {
                // Half of the kills land in the first second after the start (restore, login, prekey upload, the
                // offline queue's messages being stored and acked), half anywhere in the cycle.
                let window = cycle % 2 == 0 ? min(1, cycleSeconds) : cycleSeconds
                try await Task.sleep(for: .milliseconds(Int64(Double.random(in: 0...window, using: &generator) * 1000)))
                kill(server.process.pid, SIGKILL)
                await server.process.process.exited()
                server = try await rig.startServer(extraEnvironment: environment, dataDirectory: dataDirectory)
                if cycle % 5 == 4 {
                    reconnect.checks += 1
                    if try await rig.waitConnected(timeout: .seconds(60)) != tenants { reconnect.failures += 1 }
                }
            }
            if aimedKills > 0 {
                let aimed = try await runAimedKills(
                    rig, server: &server, environment: environment, dataDirectory: dataDirectory, sent: sent, receiver: receiver, generator: &generator)
                report.merge(aimed.figures) { $1 }
                broken += aimed.broken.prefix(20)
            }
            if pairingKills > 0 {
                // The new tenants' registrations are theirs, not re-pairings of the others (those would not connect).
                let registrations = try await rig.simulatorState()["registrations"] as? Int ?? 0
                let pairing = try await runPairingKills(rig, server: &server, environment: environment, dataDirectory: dataDirectory, generator: &generator)
                registrationsBefore += (try await rig.simulatorState()["registrations"] as? Int ?? 0) - registrations
                report["pairing_kills"] = pairing.kills
                report["pairing_kept_after_kill"] = pairing.keptPairing
                report["pairing_redone_after_kill"] = pairing.pairedAgain
                broken += pairing.broken.prefix(20).map { "pairing kill: " + $0 }
                if pairing.kills < pairingKills { broken.append("only \(pairing.kills) of \(pairingKills) pairing kills ran") }
            }
            port = server.port
            if storageFaults > 0 {
                let outcome = try await applyStorageFaults(rig, ports: [port], dataDirectory: dataDirectory, onTmpfs: faultable != nil, generator: &generator)
                record(outcome, in: &report, broken: &broken, reconnect: &reconnect)
            }
        } else {
            environment["WAHOST_LEASE_TTL"] = "\(leaseTTL)"
            let cluster = ChaosCluster(rig: rig, environment: environment)
            for index in 0..<nodes { try await cluster.start(index) }
            _ = try await rig.pairAll(ports: cluster.nodes.map(\.port), concurrency: 8)
            try await rig.waitForPreKeys()
            let pairing = try await pairAndLogOutThroughOtherNodes(cluster)
            broken += pairing.map { "pairing and logout through other nodes: " + $0 }
            registrationsBefore = try await rig.simulatorState()["registrations"] as? Int ?? 0
            sender = Task { try await sendTexts(rig, into: sent, until: stopSending) }
            let failovers = try await runFailovers(cluster, generator: &generator)
            reconnect = (failovers.checks, failovers.failures)
            broken += failovers.broken
            if storageFaults > 0 {
                // Every node loses PostgreSQL at once: each fences its sessions, then all compete for them again.
                let outcome = try await applyStorageFaults(rig, ports: cluster.nodes.map(\.port), dataDirectory: "", onTmpfs: false, generator: &generator)
                record(outcome, in: &report, broken: &broken, reconnect: &reconnect)
            }
            if joinNode {
                let joined = try await measureJoinedNode(cluster)
                report["join_node_sessions"] = joined.sessions
                report["join_fair_share"] = joined.fairShare
                report["join_seconds"] = joinSeconds
                report["join_share_after_seconds"] = (joined.seconds * 10).rounded() / 10
                if joined.sessions == 0 { broken.append("the node started after the failovers runs no session \(joinSeconds) s later") }
            }
            let undelivered = try await cluster.undelivered(failovers.forwarded.texts)
            let wrong = failovers.forwarded.wrong + undelivered
            let files = cluster.credentialFiles()
            let rounded = { (value: Double) in (value * 10).rounded() / 10 }
            var figures: [String: Any] = [
                "sessions_moved": failovers.moved, "lease_ttl_seconds": leaseTTL,
                "failover_kinds": Dictionary(uniqueKeysWithValues: failovers.cycles.map { ($0.key.rawValue, $0.value) }),
                "calls_through_other_nodes": failovers.forwarded.calls, "wrong_answers": wrong.count,
                "refusals_in_motion": failovers.forwarded.refusalsInMotion, "refusals_after_move": failovers.forwarded.refusalsAfterMove,
                "refusal_after_move_max_seconds": rounded(failovers.forwarded.latestRefusalAfterMove),
                "probes_waiting_for_a_handover": failovers.forwarded.ownerGaps,
                "handover_gap_max_seconds": rounded(failovers.forwarded.longestOwnerGap),
                "texts_through_other_nodes": failovers.forwarded.texts.count, "pairing_and_logout_through_other_nodes": pairing.isEmpty,
                "credential_files_on_nodes": files.count, "undrain_share_max_seconds": rounded(failovers.undrainSeconds),
                "replaced_at_takeover_from_paused_node": failovers.replacements.takeovers,
            ]
            let names: [(FailoverKind, String)] = [(.kill, "takeover_after_kill"), (.terminate, "handover_after_sigterm"), (.drain, "handover_after_drain"), (.pause, "takeover_after_pause")]
            for (kind, name) in names {
                figures[name + "_max_seconds"] = rounded(failovers.longest[kind] ?? 0)
                figures[name + "_bound_seconds"] = rounded(moveBoundSeconds(kind))
            }
            broken += try await notRunning(rig, at: "after the failovers")
            replacements = failovers.replacements
            report.merge(figures) { $1 }
            broken += wrong.prefix(20).map { "wrong answer: " + $0 }
            if !files.isEmpty { broken.append("credential files in the nodes' data directories: \(files.prefix(5))") }
            if failovers.moved == 0 { broken.append("no failover moved a session") }
            port = cluster.nodes[0].port
        }
        try await finish(
            rig, port: port, sent: sent, sender: (sender, stopSending), receiver: receiver, registrationsBefore: registrationsBefore, reconnect: reconnect,
            credentialsIn: credentialsIn, replacements: replacements, generator: &generator, report: report, broken: broken)
    }

    /// The network faults (when asked for), then the checks every run ends with: sessions connected once, every text
    /// in `/events` exactly once and at the webhook, no re-pairing; prints the report, throws on a broken promise.
    private func finish(
        _ rig: BenchRig, port: Int, sent: SentTexts, sender: (task: Task<Void, any Error>, stop: StopFlag), receiver: WebhookCounter, registrationsBefore: Int,
        reconnect: (checks: Int, failures: Int), credentialsIn: String?, replacements: ReplacementLedger, generator: inout SeededGenerator,
        report: [String: Any], broken: [String]
    ) async throws {
        var replacements = replacements
        var broken = broken
        var network = NetworkFaultOutcome()
        var sentBeforeFaults = 0
        if networkFaults > 0 {
            // Everything sent so far is logged before a session may end for good, so the kills' texts are all checked.
            sentBeforeFaults = sent.all.count
            _ = try await waitForEvents(rig, port: port, expected: Array(sent.all.prefix(sentBeforeFaults)), timeout: .seconds(120))
            network = try await applyNetworkFaults(rig, port: port, sent: sent, generator: &generator)
        }
        let running = tenants - network.terminal.count
        let connected = try await rig.waitConnected(expected: running, timeout: .seconds(120))
        sender.stop.stop()
        if case .failure(let error) = await sender.task.result { broken.append("the texts stopped: \(error)") }
        // Texts to a session ended for good (replaced, device removed) after the faults began may never be delivered.
        let messages = sent.all.enumerated().filter { $0.offset < sentBeforeFaults || !network.terminal.contains($0.element.tenant) }.map(\.element)
        let live = try await rig.simulatorState()["liveConnections"] as? [String: Int] ?? [:]
        for (tenant, _) in rig.tokens {
            let expected = network.terminal.contains(tenant) ? 0 : 1
            if let user = rig.accounts[tenant], live[user, default: 0] != expected {
                broken.append("\(tenant) has \(live[user, default: 0]) live connections, not \(expected)")
            }
        }
        let logged = try await waitForEvents(rig, port: port, expected: messages, timeout: .seconds(120))
        let deadline = ContinuousClock.now + .seconds(60)
        while receiver.missing(messages.map(\.id)) > 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(200)) }
        let state = try await rig.simulatorState()
        let repairings = (state["registrations"] as? Int ?? 0) - registrationsBefore
        let missing = messages.filter { logged[$0.id] == nil }.count
        let duplicated = logged.values.filter { $0 > 1 }.count
        let webhookMissing = receiver.missing(messages.map(\.id))
        let peaks = state["peakConnectionsPerAccount"] as? [String: Int] ?? [:]
        let peak = peaks.values.max() ?? 0
        let peakElsewhere = peaks.filter { !replacements.takenFromPausedNode.contains($0.key) }.values.max() ?? 0
        // A session taken over from a paused node overlapped once with the connection WhatsApp replaced (the ledger
        // allows exactly those replacements); every other account never had two.
        let overlapping = peaks.filter { $0.value > (replacements.takenFromPausedNode.contains($0.key) ? 2 : 1) }
        broken += replacements.unexplained(state, at: "at the end")
        // Every node stopped as an operator would: SIGTERM, and it must exit (its sessions handed over or closed).
        let hungStops = rig.stopServers()
        // With one node, its credential records are read back as its next start would (none torn or half-sealed).
        let unopened = credentialsIn == nil ? [] : try await unopenedCredentialRecords(rig, dataDirectory: credentialsIn, ended: network.terminal)
        broken += unopened.prefix(10)
        let figures: [String: Any] = [
            "connected_at_end": connected, "reconnect_checks": reconnect.checks, "reconnect_failures": reconnect.failures, "re_pairings": repairings,
            "messages_sent": messages.count, "events_missing": missing, "events_duplicated": duplicated,
            "webhook_missing": webhookMissing, "webhook_redelivered": receiver.redelivered, "peak_connections_per_account": peak,
            "peak_connections_per_account_not_taken_from_a_paused_node": peakElsewhere,
            "network_faults": network.faults, "sessions_ended": network.terminal.count, "stops_over_30_seconds": hungStops,
            "credential_records_unopened": unopened.count, "retry_receipts": (state["receipts"] as? [String: Int] ?? [:])["retry"] ?? 0,
        ].merging(network.figures) { $1 }
        printJSONLine(report.merging(figures) { $1 })
        broken += network.broken
        if connected != running || reconnect.failures > 0 {
            broken.append("sessions not connected again (\(reconnect.failures) of \(reconnect.checks) checks failed, \(connected) of \(running) at the end)")
        }
        if !overlapping.isEmpty { broken.append("accounts had two live connections at once: \(overlapping)") }
        if hungStops > 0 { broken.append("\(hungStops) serve processes did not exit within 30 s of SIGTERM at the end") }
        if repairings > 0 { broken.append("\(repairings) sessions paired again") }
        if missing > 0 || duplicated > 0 { broken.append("\(missing) messages missing from and \(duplicated) duplicated in the event logs") }
        if webhookMissing > 0 { broken.append("\(webhookMissing) messages never reached the webhook") }
        if messages.isEmpty { broken.append("no message was sent") }
        if !broken.isEmpty { throw BenchError("promises broken (seed \(report["seed"] ?? "")): " + broken.joined(separator: "; ")) }
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
    private func sendTexts(_ rig: BenchRig, into sent: SentTexts, until stop: StopFlag) async throws {
        let names = rig.tokens.map(\.0)
        var index = 0
        while !stop.isStopped {
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
                if stop.isStopped { return }
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
    private let answerDelay = Mutex<Duration>(.zero)
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
            let wait = counter.delay
            if wait > .zero { try? await Task.sleep(for: wait) }
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

    /// How long the receiver waits before answering each delivery (a slow receiver).
    var delay: Duration {
        get { answerDelay.withLock { $0 } }
        set { answerDelay.withLock { $0 = newValue } }
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
