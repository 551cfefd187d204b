import Foundation
import Synchronization
import WahostBasics

/// `chaos --nodes 2|3`: failovers in a cluster on PostgreSQL, with the acceptance checks of a cluster without shared
/// files (issue 17): takeover and handover times, every endpoint through nodes that do not run the session, a pairing
/// and a logout through other nodes, no credential file on any node, and (`--join-node`) a new node's share.
extension Chaos {
    /// Lease TTL of the nodes (renewed every third of it: 10 s leaves a loaded machine room for a late renewal).
    static let leaseTTLSeconds = 10

    /// What the failovers came to.
    struct FailoverReport {
        var checks = 0
        var failures = 0
        var moved = 0
        /// The longest time from a SIGKILL (or SIGTERM) until the last of the node's sessions logged in elsewhere.
        var killSeconds = 0.0
        var drainSeconds = 0.0
        var forwarded = ProbeTally()
        var broken: [String] = []
    }

    /// Each cycle kills the busiest node (SIGKILL, even cycles) or stops a random busy one (SIGTERM, odd), times the move of
    /// its sessions, restarts it, and calls every endpoint through nodes that do not run the session.
    func runFailovers(_ cluster: ChaosCluster, generator: inout SeededGenerator) async throws -> FailoverReport {
        var report = FailoverReport()
        let rig = cluster.rig
        let killBound = Double(Self.leaseTTLSeconds + 10)
        // A node reads the leases every third of the TTL (and at once on a handover notice): by then it forwards.
        let viewRefresh = Duration.milliseconds(Self.leaseTTLSeconds * 1000 / 3 + 1000)
        for cycle in 0..<cycles {
            try await Task.sleep(for: .milliseconds(Int64(Double.random(in: 0...cycleSeconds, using: &generator) * 1000)))
            let loginsBefore = try await rig.simulatorState()["logins"] as? [String: Int] ?? [:]
            let running = try await cluster.running()
            let killing = cycle % 2 == 0
            // SIGKILL the busiest node; SIGTERM a random one of those running sessions (a drain of nothing checks nothing).
            let busy = running.indices.filter { !running[$0].isEmpty }
            var victim = (busy.isEmpty ? Array(running.indices) : busy).randomElement(using: &generator) ?? 0
            if killing, let busiest = running.indices.max(by: { running[$0].count < running[$1].count }) { victim = busiest }
            let moving = running[victim]
            let survivors = cluster.nodes.indices.filter { $0 != victim }.map { cluster.nodes[$0] }
            let watched = moving.first.flatMap { tenant in rig.tokens.first { $0.0 == tenant } }
            let stopMotion = StopFlag()
            let motion = watched.map { tenant, token in Task { await Self.probeInMotion(tenant, token: token, through: survivors, until: stopMotion) } }
            let signalled = ContinuousClock.now
            if killing {
                kill(cluster.nodes[victim].process.pid, SIGKILL)
                cluster.nodes[victim].process.process.waitUntilExit()
            } else {
                cluster.nodes[victim].process.process.terminate()
            }
            let movedAt = try await rig.waitMoved(moving, loginsBefore: loginsBefore, timeout: .seconds(60))
            if !killing, try await !cluster.waitStopped(victim, by: signalled + .seconds(30)) {
                report.broken.append("node chaos-\(victim) did not stop within 30 s of SIGTERM")
            }
            report.checks += 1
            report.moved += moving.count
            if movedAt.count < moving.count { report.failures += 1 }
            let took = movedAt.values.max().map { seconds($0 - signalled) } ?? 0
            let first = movedAt.values.min().map { seconds($0 - signalled) } ?? 0
            let line = "chaos: cycle \(cycle) \(killing ? "SIGKILL" : "SIGTERM") \(cluster.nodes[victim].id): \(movedAt.count) of \(moving.count) sessions moved"
            FileHandle.standardError.write(Data((line + String(format: " in %.1f-%.1f s\n", first, took)).utf8))
            if killing {
                report.killSeconds = max(report.killSeconds, took)
                if took > killBound { report.broken.append("cycle \(cycle): the sessions of a killed node took \(took) s to move (bound \(killBound) s)") }
            } else {
                report.drainSeconds = max(report.drainSeconds, took)
                if took > 5 { report.broken.append("cycle \(cycle): the sessions of a stopped node took \(took) s to move (bound 5 s)") }
            }
            try await cluster.start(victim)
            try await Task.sleep(until: (movedAt.values.max() ?? signalled) + viewRefresh, clock: .continuous)
            if let motion, let tenant = watched?.0 {
                stopMotion.stop()
                let answers = await motion.value
                report.forwarded.add(Self.judge(answers, tenant: tenant, cycle: cycle, movedAt: movedAt[tenant], viewRefresh: viewRefresh))
            }
            report.forwarded.add(try await cluster.probeSample(cycle: cycle, count: probeTenants))
        }
        return report
    }

    /// One answer to `groups` while a session moves.
    struct MotionAnswer: Sendable {
        let at: ContinuousClock.Instant
        let node: String
        let correct: Bool
        let summary: String
        /// A refusal to retry: 503 `owner_unreachable`, `not_owned_here` or `session_moving`, or 409 `wrong_state` (no node runs it yet).
        let refusal: Bool
    }

    /// Asks for the moving session's groups through the surviving nodes in turn, every 250 ms until `stop`.
    static func probeInMotion(_ tenant: String, token: String, through nodes: [ChaosCluster.Node], until stop: StopFlag) async -> [MotionAnswer] {
        var answers: [MotionAnswer] = []
        var turn = 0
        while !stop.isStopped {
            let node = nodes[turn % nodes.count]
            turn += 1
            let answer = await callNode("GET", port: node.port, "/tenants/\(tenant)/session/groups", headers: ["x-admin-token": token])
            let refusal = (answer.status == 503 && ["owner_unreachable", "not_owned_here", "session_moving"].contains(answer.errorCode ?? ""))
                || (answer.status == 409 && answer.errorCode == "wrong_state")
            answers.append(
                MotionAnswer(
                    at: .now, node: node.id, correct: answer.status == 200 && ChaosCluster.isGroupFixture(answer.json), summary: answer.summary,
                    refusal: refusal))
            try? await Task.sleep(for: .milliseconds(250))
        }
        return answers
    }

    /// Refusals are allowed until the session logged in elsewhere and the asking node read the new lease; nothing else.
    static func judge(_ answers: [MotionAnswer], tenant: String, cycle: Int, movedAt: ContinuousClock.Instant?, viewRefresh: Duration) -> ProbeTally {
        var tally = ProbeTally()
        for answer in answers {
            tally.calls += 1
            if answer.correct { continue }
            let settled = movedAt.map { answer.at > $0 + viewRefresh } ?? false
            // "Moving, retry" is the product's own bounded signal (a balancing move may follow the failover).
            if answer.refusal, !settled || answer.summary.contains("session_moving") {
                tally.refusalsInMotion[answer.summary, default: 0] += 1
                if let movedAt, answer.at > movedAt {
                    tally.refusalsAfterMove += 1
                    tally.latestRefusalAfterMove = max(tally.latestRefusalAfterMove, seconds(answer.at - movedAt))
                }
            } else {
                tally.wrong.append("cycle \(cycle): \(tenant)'s groups through \(answer.node) while it moved: \(answer.summary)")
            }
        }
        return tally
    }

    /// A new tenant created through one node, its QR code asked for through a second node while the first runs the
    /// pairing, its status and logout through a third; returns what went wrong.
    func pairAndLogOutThroughOtherNodes(_ cluster: ChaosCluster) async throws -> [String] {
        let rig = cluster.rig
        let nodes = cluster.nodes
        let (first, second, third) = (nodes[0], nodes[1 % nodes.count], nodes[nodes.count - 1])
        let created = await callNode("POST", port: second.port, "/tenants", headers: ["x-admin-token": rig.operatorToken], body: ["name": "fresh", "mfa": false])
        guard created.status == 201, let token = created.object["admin_token"] as? String else { return ["creating a tenant: \(created.summary)"] }
        let auth = ["x-admin-token": token]
        var wrong: [String] = []
        let started = await callNode("GET", port: first.port, "/tenants/fresh/session/qr", headers: auth)
        guard started.status == 200, started.servedBy == nil else { return ["QR on \(first.id): \(started.summary)"] }
        // Until the second node has read the first one's lease it refuses (not_owned_here); then it forwards.
        var qr: String?
        let deadline = ContinuousClock.now + .seconds(30)
        while qr == nil, ContinuousClock.now < deadline {
            let answer = await callNode("GET", port: second.port, "/tenants/fresh/session/qr", headers: auth)
            if answer.status == 200, answer.servedBy == first.id, let text = answer.object["qr"] as? String { qr = text }
            if answer.status != 200, answer.errorCode != "not_owned_here" { wrong.append("QR through \(second.id): \(answer.summary)") }
            if qr == nil { try await Task.sleep(for: .milliseconds(200)) }
        }
        guard let qr else { return wrong + ["QR through \(second.id) never forwarded to \(first.id)"] }
        let (scanned, linked) = try await request("POST", rig.control + "/scan", body: ["qr": qr])
        guard scanned == 200, let jid = linked["jid"] as? String else { return wrong + ["the phone could not scan the QR code: \(linked)"] }
        let account = String(jid.prefix { $0 != ":" && $0 != "@" })
        var connected = false
        while !connected, ContinuousClock.now < deadline + .seconds(30) {
            let status = await callNode("GET", port: third.port, "/tenants/fresh/session/status", headers: auth)
            connected = status.status == 200 && status.servedBy == first.id && status.object["connected"] as? Bool == true
                && (status.object["me"] as? String)?.hasPrefix(account) == true
            if !connected { try await Task.sleep(for: .milliseconds(200)) }
        }
        if !connected { return wrong + ["the new session never showed connected through \(third.id)"] }
        let logout = await callNode("POST", port: third.port, "/tenants/fresh/session/logout", headers: auth)
        if logout.status != 200 || logout.servedBy != first.id { wrong.append("logout through \(third.id): \(logout.summary) served by \(logout.servedBy ?? "itself")") }
        let end = ContinuousClock.now + .seconds(10)
        var state = try await rig.simulatorState()
        while (state["logouts"] as? [String: Int])?[account] != 1 || (state["liveConnections"] as? [String: Int])?[account, default: 0] != 0, ContinuousClock.now < end {
            try await Task.sleep(for: .milliseconds(200))
            state = try await rig.simulatorState()
        }
        if (state["logouts"] as? [String: Int])?[account] != 1 { wrong.append("the phone saw no logout of the new session") }
        if (state["liveConnections"] as? [String: Int])?[account, default: 0] != 0 { wrong.append("the new session is still connected after its logout") }
        for node in nodes {
            let status = await callNode("GET", port: node.port, "/tenants/fresh/session/status", headers: auth)
            if status.status != 200 || status.object["connected"] as? Bool != false || status.object["logged_in"] as? Bool != false {
                wrong.append("status through \(node.id) after the logout: \(status.summary) \(status.object)")
            }
        }
        return wrong
    }

    /// Starts one node more after the failovers and counts the sessions it runs `joinSeconds` later (balancing).
    func measureJoinedNode(_ cluster: ChaosCluster) async throws -> (sessions: Int, fairShare: Int) {
        let index = cluster.nodes.count
        try await cluster.start(index)
        try await Task.sleep(for: .seconds(joinSeconds))
        let running = try await cluster.running()
        return (running[index].count, cluster.rig.tokens.count / cluster.nodes.count)
    }
}

/// Ends a polling loop after its current call: cancelling a task inside URLSession can deadlock FoundationNetworking.
final class StopFlag: Sendable {
    private let stopped = Mutex(false)
    func stop() { stopped.withLock { $0 = true } }
    var isStopped: Bool { stopped.withLock { $0 } }
}
