import App
import Foundation
import Logging
import Tenancy

/// The drain and pause cycles of `chaos --nodes N` (ChaosFailover.swift): their bounds and the checks after them, and
/// the ledger of connections WhatsApp replaced (the only overlap it allows, and only off a paused node).
extension Chaos {
    /// A node's heartbeat (a third of the lease TTL): it reads its drain request and renews its leases at that pace.
    var heartbeat: Duration { .milliseconds(leaseTTL * 1000 / 3) }

    /// A node reads the leases every heartbeat (and at once on a handover notice): one second after it, it forwards.
    var viewRefresh: Duration { heartbeat + .seconds(1) }

    /// From the signal or drain request until the last of the node's sessions logged in elsewhere, at most: the TTL
    /// plus 10 s when the leases must expire (kill, pause), the handover bound after SIGTERM, and a heartbeat more
    /// for a drain (the drained node reads its request at its next heartbeat, then hands over as on SIGTERM).
    func moveBoundSeconds(_ kind: FailoverKind) -> Double {
        let handover = Double(ChaosCluster.handoverBoundSeconds)
        switch kind {
        case .kill, .pause: return Double(leaseTTL + 10)
        case .terminate: return handover
        case .drain: return handover + seconds(heartbeat)
        }
    }

    /// After the probes: the drained node still answers, is listed draining with no lease and runs no session. Then
    /// the drain is lifted, and while another node runs more than its fair share the node must run a session again
    /// within the TTL plus the handover bound (it reads the lift at a heartbeat, the others hand over at theirs).
    /// Returns what went wrong and how long the share took to come back.
    func checkDrainedAndUndrain(_ cluster: ChaosCluster, victim: Int, cycle: Int) async throws -> (wrong: [String], seconds: Double?) {
        let (node, token) = (cluster.nodes[victim], cluster.rig.operatorToken)
        var wrong: [String] = []
        let health = await callNode("GET", port: node.port, "/healthz")
        if health.status != 200 { wrong.append("cycle \(cycle): the drained node \(node.id) answered /healthz \(health.summary)") }
        let running = try await cluster.running()
        if !running[victim].isEmpty { wrong.append("cycle \(cycle): the drained node \(node.id) runs \(running[victim]) (it takes none)") }
        let other = cluster.nodes[(victim + 1) % cluster.nodes.count]
        let table = await callNode("GET", port: other.port, "/operator/nodes", headers: ["x-admin-token": token])
        let row = (table.object["nodes"] as? [[String: Any]] ?? []).first { $0["id"] as? String == node.id }
        if row?["draining"] as? Bool != true || row?["sessions"] as? Int != 0 {
            wrong.append("cycle \(cycle): /operator/nodes lists the drained node as \(row.map { "\($0)" } ?? "missing") (\(table.summary))")
        }
        let lifted = await callNode("DELETE", port: other.port, "/operator/nodes/\(node.id)/drain", headers: ["x-admin-token": token])
        if lifted.status != 200 || lifted.object["draining"] as? Bool != false { wrong.append("cycle \(cycle): undrain answered \(lifted.summary)") }
        let total = running.map(\.count).reduce(0, +)
        let share = (total + cluster.nodes.count - 1) / cluster.nodes.count
        guard running.contains(where: { $0.count > share }) else { return (wrong, nil) }
        let since = ContinuousClock.now
        let bound = Duration.seconds(leaseTTL + ChaosCluster.handoverBoundSeconds)
        while try await cluster.running()[victim].isEmpty, ContinuousClock.now < since + bound { try await Task.sleep(for: .milliseconds(100)) }
        let took = seconds(ContinuousClock.now - since)
        if try await cluster.running()[victim].isEmpty {
            wrong.append("cycle \(cycle): the undrained node \(node.id) ran no session \(took) s after the drain was lifted (shares \(running.map(\.count)))")
        }
        FileHandle.standardError.write(Data("chaos: cycle \(cycle): \(node.id) undrained, running a session again after \(String(format: "%.1f", took)) s\n".utf8))
        return (wrong, took)
    }

    /// A node resumed with `SIGCONT` after its sessions were taken over while it was frozen.
    struct ResumedNode {
        let index: Int
        let at: ContinuousClock.Instant
        let moved: [String]
    }

    /// Two heartbeats after the resume (the node has renewed, found its leases lost and heard `replaced` on its old
    /// connections): it answers, each session it lost has exactly one live connection (within the handover bound, a
    /// balancing move may be in flight), and every tenant's desired state is still `running` (a resumed node must not
    /// record the `replaced` it hears as the session's end). A steal shows in the replacement ledger.
    func checkResumed(_ cluster: ChaosCluster, _ resumed: ResumedNode, cycle: Int) async throws -> [String] {
        let rig = cluster.rig
        try await Task.sleep(until: resumed.at + heartbeat * 2 + .seconds(1), clock: .continuous)
        var wrong: [String] = []
        let node = cluster.nodes[resumed.index]
        let health = await callNode("GET", port: node.port, "/healthz")
        if health.status != 200 { wrong.append("cycle \(cycle): the resumed node \(node.id) answered /healthz \(health.summary)") }
        let accounts = resumed.moved.compactMap { rig.accounts[$0] }
        let deadline = ContinuousClock.now + .seconds(ChaosCluster.handoverBoundSeconds)
        var live = try await rig.simulatorState()["liveConnections"] as? [String: Int] ?? [:]
        while accounts.contains(where: { live[$0] != 1 }), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
            live = try await rig.simulatorState()["liveConnections"] as? [String: Int] ?? [:]
        }
        for (tenant, account) in zip(resumed.moved, accounts) where live[account] != 1 {
            wrong.append("cycle \(cycle): \(tenant) has \(live[account, default: 0]) live connections after its paused node resumed")
        }
        return wrong + (try await notRunning(rig, at: "cycle \(cycle), after the resume"))
    }

    /// Tenants whose desired state (read from the database) is not `running`.
    func notRunning(_ rig: BenchRig, at label: String) async throws -> [String] {
        var logger = Logger(label: "wahost.bench")
        logger.logLevel = .error
        let services = try await WahostServices.open(
            WahostConfiguration(dataDirectory: rig.directory, databaseURL: rig.databaseURL, masterKeyBase64: rig.masterKey), logger: logger)
        let desired: [TenantName: DesiredSessionState]
        do { desired = try await services.store.desiredStates() } catch {
            await services.close()
            throw error
        }
        await services.close()
        return rig.tokens.map(\.0).filter { desired[try! TenantName($0)] != .running }.map { "\(label): \($0)'s desired state is \(desired[try! TenantName($0)]?.rawValue ?? "none")" }
    }
}

/// Connections WhatsApp replaced by a later login of the same account (the simulator's `replacedByLogin`). Each is an
/// overlap (the peak counts both), allowed once per session taken over from a paused node, whose frozen process
/// keeps its socket open until the taker's login replaces it; any other replacement is two nodes running one session.
struct ReplacementLedger {
    /// Replacements explained (or already reported) per account.
    private(set) var allowed: [String: Int] = [:]
    /// Those allowed as takeovers from a paused node, and their accounts (whose peak may be 2).
    private(set) var takeovers = 0
    private(set) var takenFromPausedNode: Set<String> = []

    /// Replacements beyond the explained ones, reported once each.
    mutating func unexplained(_ state: [String: Any], at label: String) -> [String] {
        let replaced = state["replacedByLogin"] as? [String: Int] ?? [:]
        var wrong: [String] = []
        for (account, count) in replaced.sorted(by: { $0.key < $1.key }) where count > allowed[account, default: 0] {
            wrong.append("\(label): a login of \(account) replaced a live connection of it (\(count) times, \(allowed[account, default: 0]) explained)")
            allowed[account] = count
        }
        return wrong
    }

    /// After the sessions of a paused node logged in elsewhere: at most one replacement each, allowed.
    mutating func allowTakeovers(of accounts: [String], state: [String: Any], at label: String) -> [String] {
        let replaced = state["replacedByLogin"] as? [String: Int] ?? [:]
        var wrong: [String] = []
        for account in accounts {
            let new = replaced[account, default: 0] - allowed[account, default: 0]
            if new > 1 { wrong.append("\(label): \(account) was replaced \(new) times while its paused node's session moved (once allowed)") }
            if new > 0 {
                allowed[account] = replaced[account]
                takeovers += 1
                takenFromPausedNode.insert(account)
            }
        }
        return wrong
    }
}
