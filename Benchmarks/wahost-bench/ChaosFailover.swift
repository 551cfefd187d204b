import Foundation
import Synchronization
import TestSupport
import WahostBasics

/// `chaos --nodes 2|3`: failovers in a cluster on PostgreSQL, with the acceptance checks of a cluster without shared
/// files (issue 17): takeover and handover times, every endpoint through nodes that do not run the session, a pairing
/// and a logout through other nodes, no credential file on any node, and (`--join-node`) a new node's share.
extension Chaos {
    /// What the failovers came to.
    struct FailoverReport {
        var checks = 0
        var failures = 0
        var moved = 0
        /// The longest time from the signal (or drain request) until the last of the node's sessions logged in elsewhere, by kind.
        var longest: [FailoverKind: Double] = [:]
        var cycles: [FailoverKind: Int] = [:]
        /// The longest time from an undrain until the node ran a session again (balancing gave it its share back).
        var undrainSeconds = 0.0
        var forwarded = ProbeTally()
        var replacements = ReplacementLedger()
        var broken: [String] = []
    }

    /// How a cycle moves a node's sessions away.
    enum FailoverKind: String, CaseIterable {
        /// `SIGKILL`: the leases end after the TTL; another node takes them over.
        case kill = "SIGKILL"
        /// `SIGTERM`: the node hands its leases over and exits; restarted afterwards.
        case terminate = "SIGTERM"
        /// `POST /operator/nodes/{id}/drain`: it hands everything over and stays up, taking none; undrained afterwards.
        case drain
        /// `SIGSTOP` until its leases ended and its sessions logged in elsewhere, then `SIGCONT`: it must give them up.
        case pause = "SIGSTOP"
    }

    /// Each cycle moves the sessions of one node by a kind the seeded generator picks (every kind once in each round
    /// of four, in a seeded order), times the move, brings the node back, and calls every endpoint through nodes that
    /// do not run the session.
    func runFailovers(_ cluster: ChaosCluster, generator: inout SeededGenerator) async throws -> FailoverReport {
        var report = FailoverReport()
        let rig = cluster.rig
        var round: [FailoverKind] = []
        for cycle in 0..<cycles {
            if round.isEmpty { round = FailoverKind.allCases.shuffled(using: &generator) }
            let kind = round.removeFirst()
            try await Task.sleep(for: .milliseconds(Int64(Double.random(in: 0...cycleSeconds, using: &generator) * 1000)))
            let before = try await rig.simulatorState()
            let loginsBefore = before["logins"] as? [String: Int] ?? [:]
            report.broken += report.replacements.unexplained(before, at: "before cycle \(cycle)")
            let running = try await cluster.running()
            // SIGKILL and SIGSTOP the busiest node; SIGTERM or drain a random one of those running sessions (a drain of nothing checks nothing).
            let busy = running.indices.filter { !running[$0].isEmpty }
            var victim = (busy.isEmpty ? Array(running.indices) : busy).randomElement(using: &generator) ?? 0
            if [.kill, .pause].contains(kind), let busiest = running.indices.max(by: { running[$0].count < running[$1].count }) { victim = busiest }
            let moving = running[victim]
            let survivors = cluster.nodes.indices.filter { $0 != victim }.map { cluster.nodes[$0] }
            let watched = moving.first.flatMap { tenant in rig.tokens.first { $0.0 == tenant } }
            let stopMotion = StopFlag()
            let motion = watched.map { tenant, token in Task { await Self.probeInMotion(tenant, token: token, through: survivors, until: stopMotion) } }
            let signalled = ContinuousClock.now
            let process = cluster.nodes[victim].process
            switch kind {
            case .kill:
                kill(process.pid, SIGKILL)
                await process.process.exited()
            case .terminate: process.process.terminate()
            case .drain:
                let through = survivors.randomElement(using: &generator) ?? cluster.nodes[victim]
                let drained = await callNode("POST", port: through.port, "/operator/nodes/\(cluster.nodes[victim].id)/drain", headers: ["x-admin-token": rig.operatorToken])
                if drained.status != 202 || drained.object["draining"] as? Bool != true {
                    report.broken.append("cycle \(cycle): drain of \(cluster.nodes[victim].id) through \(through.id) answered \(drained.summary)")
                }
            case .pause: kill(process.pid, SIGSTOP)
            }
            let movedAt = try await rig.waitMoved(moving, loginsBefore: loginsBefore, timeout: .seconds(60))
            if kind == .terminate, try await !cluster.waitStopped(victim, by: signalled + .seconds(30)) {
                report.broken.append("node chaos-\(victim) did not stop within 30 s of SIGTERM")
            }
            report.checks += 1
            report.moved += moving.count
            report.cycles[kind, default: 0] += 1
            if movedAt.count < moving.count { report.failures += 1 }
            let took = movedAt.values.max().map { seconds($0 - signalled) } ?? 0
            let first = movedAt.values.min().map { seconds($0 - signalled) } ?? 0
            let line = "chaos: cycle \(cycle) \(kind.rawValue) \(cluster.nodes[victim].id): \(movedAt.count) of \(moving.count) sessions moved"
            FileHandle.standardError.write(Data((line + String(format: " in %.1f-%.1f s\n", first, took)).utf8))
            report.longest[kind] = max(report.longest[kind] ?? 0, took)
            let bound = moveBoundSeconds(kind)
            if took > bound { report.broken.append("cycle \(cycle): the sessions of a node (\(kind.rawValue)) took \(took) s to move (bound \(bound) s)") }
            var resumed: ResumedNode?
            switch kind {
            case .kill, .terminate: try await cluster.start(victim)
            case .drain: break
            case .pause:
                // Its sessions were taken over while it was frozen: WhatsApp replaced its connections, once each.
                let state = try await rig.simulatorState()
                report.broken += report.replacements.allowTakeovers(of: moving.compactMap { rig.accounts[$0] }, state: state, at: "cycle \(cycle)")
                kill(process.pid, SIGCONT)
                resumed = ResumedNode(index: victim, at: .now, moved: moving)
            }
            try await Task.sleep(until: (movedAt.values.max() ?? signalled) + viewRefresh, clock: .continuous)
            if let motion, let tenant = watched?.0 {
                stopMotion.stop()
                let answers = await motion.value
                report.forwarded.add(Self.judge(answers, tenant: tenant, cycle: cycle, movedAt: movedAt[tenant], viewRefresh: viewRefresh))
            }
            report.forwarded.add(try await cluster.probeSample(cycle: cycle, count: probeTenants))
            if kind == .drain {
                let (wrong, undrained) = try await checkDrainedAndUndrain(cluster, victim: victim, cycle: cycle)
                report.broken += wrong
                report.undrainSeconds = max(report.undrainSeconds, undrained ?? 0)
            }
            if let resumed { report.broken += try await checkResumed(cluster, resumed, cycle: cycle) }
            report.broken += report.replacements.unexplained(try await rig.simulatorState(), at: "after cycle \(cycle) (\(kind.rawValue))")
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

    /// Starts one node more after the failovers and counts the sessions it runs once it has its fair share (tenants /
    /// nodes, at least one), or `joinSeconds` later (balancing); also how long that took.
    func measureJoinedNode(_ cluster: ChaosCluster) async throws -> (sessions: Int, fairShare: Int, seconds: Double) {
        let index = cluster.nodes.count
        try await cluster.start(index)
        let (started, fairShare) = (ContinuousClock.now, cluster.rig.tokens.count / cluster.nodes.count)
        var sessions = try await cluster.running()[index].count
        while sessions < max(1, fairShare), ContinuousClock.now < started + .seconds(joinSeconds) {
            try await Task.sleep(for: .milliseconds(500))
            sessions = try await cluster.running()[index].count
        }
        return (sessions, fairShare, seconds(ContinuousClock.now - started))
    }
}

/// Ends a polling loop after its current call: cancelling a task inside URLSession can deadlock FoundationNetworking.
final class StopFlag: Sendable {
    private let stopped = Mutex(false)
    func stop() { stopped.withLock { $0 = true } }
    var isStopped: Bool { stopped.withLock { $0 } }
}
