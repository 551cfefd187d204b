import App
import Foundation
import SessionPool
import WahostBasics
import WhatsApp

/// `chaos --network-faults N`: faults the simulator applies to live sessions at random moments, the way WhatsApp's
/// servers and networks do: drops, stream errors (`515`, `503`), the wire faults (a frame stalled halfway by a peer
/// that stops reading, slow answers, a silent server, garbage and overlong frames), a drop whose reconnect meets a
/// server that never answers the WebSocket upgrade, a drop whose reconnect's login gets no answer, and, for a few
/// accounts, the terminal ones (`conflict replaced`, `device_removed`).
extension Chaos {
    /// What the faults came to: the tenants ended for good, and each broken promise.
    struct NetworkFaultOutcome {
        var terminal: Set<String> = []
        var faults = 0
        var broken: [String] = []
        var figures: [String: Any] = [:]
    }

    /// The reconnect policy `serve` runs with under `--time-scale`, from the product's own defaults.
    struct ReconnectPolicy {
        let keepalive: ClosedRange<Duration>
        let deadline: Duration
        let closeTimeout: Duration
        let upgradeTimeout: Duration
        let handshakeTimeout: Duration
        let backoff: Backoff

        init(timeScale: Double) {
            var configuration = WahostConfiguration()
            configuration.timeScale = timeScale
            let client = configuration.scaled(WhatsAppClientConfiguration(url: "ws://127.0.0.1/ws/chat"))
            (keepalive, deadline, closeTimeout) = (client.keepaliveInterval, client.keepaliveDeadline, client.closeTimeout)
            upgradeTimeout = client.upgradeTimeout
            handshakeTimeout = client.handshakeTimeout
            backoff = configuration.poolConfiguration.backoff
        }

        /// The longest a fault leaves a session without a login, before the reconnect's own handshake and login: the
        /// keepalive's detection (a ping sent at most one interval later, its deadline, the close), then the first
        /// backoff attempt's ceiling (a login resets the attempts, so every fault starts at attempt 1).
        func longestRecovery(detectedByKeepalive: Bool) -> Duration {
            (detectedByKeepalive ? keepalive.upperBound + deadline + closeTimeout : .zero) + backoff.ceiling(attempt: 1)
        }

        /// What unanswered upgrades and logins can add to a session's recovery: each one it meets costs its deadline
        /// (the upgrade's, or the handshake's for a login) and one more backoff attempt (attempt 2, 3, …: no login
        /// resets the attempts between them).
        func stallsDelay(upgrades: Int, logins: Int) -> Duration {
            let deadlines = upgradeTimeout * upgrades + handshakeTimeout * logins
            return (0..<(upgrades + logins)).reduce(deadlines) { total, index in total + backoff.ceiling(attempt: index + 2) }
        }
    }

    /// One kind of fault, and how the control API applies it.
    private enum Fault: String, CaseIterable {
        case drop, restart515 = "stream_error_515", unavailable503 = "stream_error_503", stall, slowBelowDeadline = "slow_below_deadline"
        case slowPastDeadline = "slow_past_deadline", silent, garbage, overlong, replaced, deviceRemoved = "device_removed"
        /// A drop, with the next connection to arrive (most likely this session's reconnect) held at the upgrade.
        case upgradeUnanswered = "upgrade_unanswered"
        /// A drop, with this account's next login (its reconnect's) left without an answer after the handshake.
        case loginUnanswered = "login_unanswered"

        /// Only the keepalive notices it: no byte says the connection is over.
        var detectedByKeepalive: Bool { [.stall, .slowPastDeadline, .silent, .overlong].contains(self) }
        var terminal: Bool { self == .replaced || self == .deviceRemoved }

        /// The control path and body; `deadline` scales the slow answers.
        func request(deadline: Duration, using generator: inout SeededGenerator) -> (String, [String: Any]) {
            let seconds = Double(deadline.wholeMilliseconds) / 1000
            switch self {
            case .drop, .upgradeUnanswered, .loginUnanswered: return ("drop", [:])
            case .restart515: return ("stream-error", ["code": 515])
            case .unavailable503: return ("stream-error", ["code": 503])
            case .replaced: return ("stream-error", ["conflict": "replaced"])
            case .deviceRemoved: return ("remove-device", [:])
            case .stall, .silent, .garbage, .overlong: return ("wire-fault", ["kind": rawValue])
            case .slowBelowDeadline: return ("wire-fault", ["kind": "slow", "seconds": seconds * Double.random(in: 0.2...0.5, using: &generator)])
            case .slowPastDeadline: return ("wire-fault", ["kind": "slow", "seconds": seconds * Double.random(in: 1.5...3, using: &generator)])
            }
        }
    }

    func applyNetworkFaults(_ rig: BenchRig, port: Int, sent: SentTexts, generator: inout SeededGenerator) async throws -> NetworkFaultOutcome {
        var outcome = NetworkFaultOutcome()
        let policy = ReconnectPolicy(timeScale: timeScale)
        let names = rig.tokens.map(\.0)
        let stateBefore = try await rig.simulatorState()
        let loginsBefore = stateBefore["logins"] as? [String: Int] ?? [:]
        let slowEndsBefore = stateBefore["slowConnectionsClosedByClient"] as? [String: [Double]] ?? [:]
        // Each fault that reaches a live connection ends at most that connection, and the policy answers an end with
        // one login (515 at once, any other after backoff attempt 1; a further attempt only follows a failed one).
        var loginsAllowed: [String: Int] = [:]
        var lastFault: [String: ContinuousClock.Instant] = [:]
        var lastReaching: [String: (at: ContinuousClock.Instant, logins: Int, keepalive: Bool)] = [:]
        var expectedState: [String: String] = [:]
        var kinds: [String: Int] = [:]
        // When each unanswered upgrade was armed: whoever connects next meets it, not necessarily the dropped session.
        var stalledUpgrades: [ContinuousClock.Instant] = []
        // When each tenant's login stalls were armed: its own next login meets each.
        var stalledLogins: [String: [ContinuousClock.Instant]] = [:]
        let started = ContinuousClock.now
        // With WAHOST_BENCH_LOG_DIR, each fault is logged beside the `serve` logs, to match a login to the fault before it.
        let faultLog = ProcessInfo.processInfo.environment["WAHOST_BENCH_LOG_DIR"].flatMap { directory -> FileHandle? in
            let path = directory + "/network-faults.log"
            _ = FileManager.default.createFile(atPath: path, contents: nil)
            return FileHandle(forWritingAtPath: path)
        }
        defer { try? faultLog?.close() }
        for _ in 0..<networkFaults {
            try await Task.sleep(for: .milliseconds(Int64(Double.random(in: 0...cycleSeconds, using: &generator) * 1000)))
            let state = try await rig.simulatorState()
            let live = state["liveConnections"] as? [String: Int] ?? [:]
            let logins = state["logins"] as? [String: Int] ?? [:]
            let candidates = names.filter { expectedState[$0] == nil }
            guard let tenant = candidates.randomElement(using: &generator), let user = rig.accounts[tenant] else { break }
            let roll = Double.random(in: 0..<1, using: &generator)
            // At most a third of the tenants end for good, and only while connected (a terminal error reaches live
            // connections only; a session between connections would never see it).
            // A connection dropped by an earlier fault is counted live until its socket has closed: leave 3 s.
            let quiet = lastFault[tenant].map { ContinuousClock.now - $0 > .seconds(3) } ?? true
            let mayEnd = expectedState.count < max(1, names.count / 3) && live[user] == 1 && quiet
            let fault: Fault
            switch roll {
            case ..<0.15: fault = .drop
            case ..<0.20: fault = .loginUnanswered
            // One armed at a time (an armed one waits for the next connection): else a plain drop.
            case ..<0.25: fault = (state["connectFaultsArmed"] as? [String: Int])?["upgrade_unanswered", default: 0] == 0 ? .upgradeUnanswered : .drop
            case ..<0.40: fault = .restart515
            case ..<0.50: fault = .unavailable503
            case ..<0.60: fault = .stall
            case ..<0.65: fault = .slowBelowDeadline
            case ..<0.70: fault = .slowPastDeadline
            case ..<0.80: fault = .silent
            case ..<0.85: fault = .garbage
            case ..<0.90: fault = .overlong
            case ..<0.95 where mayEnd: fault = .replaced
            default:
                guard mayEnd else { continue }
                fault = .deviceRemoved
            }
            if fault.terminal {
                expectedState[tenant] = fault == .replaced ? "replaced" : "logged_out"
                sent.stop(tenant)
            }
            if fault == .upgradeUnanswered {
                try await arm(fault, rig.control + "/connect-fault", ["kind": "upgrade_unanswered", "count": 1])
                stalledUpgrades.append(ContinuousClock.now)
            }
            if fault == .loginUnanswered {
                try await arm(fault, rig.control + "/accounts/\(user)/stall-login", ["stall": true])
                stalledLogins[tenant, default: []].append(ContinuousClock.now)
            }
            let (path, body) = fault.request(deadline: policy.deadline, using: &generator)
            let (status, answer) = try await request("POST", rig.control + "/accounts/\(user)/\(path)", body: body)
            guard status == 200 else { throw BenchError("fault \(fault.rawValue) on \(user): \(status) \(answer)") }
            // The control API says how many connections the fault reached (none while the session reconnects).
            let reached = (answer["connections"] as? Int ?? 0) > 0
            lastFault[tenant] = ContinuousClock.now
            if reached, fault != .slowBelowDeadline {
                loginsAllowed[tenant, default: 0] += 1
                lastReaching[tenant] = (ContinuousClock.now, logins[user, default: 0], fault.detectedByKeepalive)
            }
            kinds[fault.rawValue, default: 0] += 1
            outcome.faults += 1
            let line = "\(Date().formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))) tenant=\(tenant) fault=\(fault.rawValue) reached=\(reached)\n"
            faultLog?.write(Data(line.utf8))
        }
        let faultSeconds = (ContinuousClock.now - started).timeInterval
        outcome.terminal = Set(expectedState.keys)
        // An upgrade still armed would hold whichever connection comes next, after the faults.
        _ = try await request("POST", rig.control + "/connect-fault", body: ["kind": "upgrade_unanswered", "count": 0])
        for tenant in stalledLogins.keys { _ = try await request("POST", rig.control + "/accounts/\(rig.accounts[tenant] ?? "")/stall-login", body: ["stall": false]) }

        // No stuck session: each one a fault reached logs in again within the policy's recovery (and 15 s for the
        // reconnect's own handshake, login and restore); a stalled connection still looks connected to the API.
        let slack: Duration = .seconds(15)
        let running = names.filter { !outcome.terminal.contains($0) }
        var recoveryMissed: [String] = []
        for tenant in running {
            guard let user = rig.accounts[tenant], let last = lastReaching[tenant] else { continue }
            // The stall armed before its last fault (if still waiting then) and every one after it may be met on the way.
            let mayMeet = { (armed: [ContinuousClock.Instant]) in armed.filter { $0 > last.at }.count + (armed.contains { $0 <= last.at } ? 1 : 0) }
            let delay = policy.stallsDelay(upgrades: mayMeet(stalledUpgrades), logins: mayMeet(stalledLogins[tenant] ?? []))
            let deadline = last.at + policy.longestRecovery(detectedByKeepalive: last.keepalive) + delay + slack
            while true {
                let logins = try await rig.simulatorState()["logins"] as? [String: Int] ?? [:]
                if logins[user, default: 0] > last.logins { break }
                if ContinuousClock.now > deadline {
                    recoveryMissed.append(tenant)
                    break
                }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        outcome.broken += recoveryMissed.map { "\($0) did not log in again within the policy's recovery bound after its last fault" }
        if try await rig.waitConnected(expected: running.count, timeout: .seconds(60)) != running.count {
            outcome.broken.append("sessions not connected again after the network faults")
        }
        // Every connection held at the upgrade was given up and closed by its client (no socket or task left behind).
        let heldUpgrades = try await waitForHeldUpgradesClosed(rig)
        if heldUpgrades.open > 0 { outcome.broken.append("\(heldUpgrades.open) connections held at the upgrade still open after the faults") }
        if heldUpgrades.closedByClient != heldUpgrades.met {
            outcome.broken.append("\(heldUpgrades.met) connections met an unanswered upgrade; their clients closed \(heldUpgrades.closedByClient)")
        }
        for (tenant, state) in expectedState where try await !waitForState(rig, port: port, tenant: tenant, state: state) {
            outcome.broken.append("\(tenant) is not \(state) after its terminal fault")
        }
        let loginsAtEnd = try await rig.simulatorState()["logins"] as? [String: Int] ?? [:]
        try await Task.sleep(for: .seconds(5))
        let stateLater = try await rig.simulatorState()
        let loginsLater = stateLater["logins"] as? [String: Int] ?? [:]
        // A slow answer below the deadline ends nothing, unless the machine's own latency pushed a ping past it: a
        // connection slowed below the deadline that the client closed (nothing else reaching it) allows one login too.
        let slowEnds = stateLater["slowConnectionsClosedByClient"] as? [String: [Double]] ?? [:]
        let deadline = policy.deadline.timeInterval
        var slowEndsTotal = 0
        for tenant in outcome.terminal {
            guard let user = rig.accounts[tenant], loginsLater[user, default: 0] != loginsAtEnd[user, default: 0] else { continue }
            outcome.broken.append("\(tenant) logged in again after \(expectedState[tenant] ?? "its end")")
        }
        // No storm: never more logins than the policy allows for the faults that reached the session.
        var loginsTotal = 0
        var boundTotal = 0
        for tenant in running {
            guard let user = rig.accounts[tenant] else { continue }
            let logins = loginsLater[user, default: 0] - loginsBefore[user, default: 0]
            let slowEnded = slowEnds[user, default: []].dropFirst(slowEndsBefore[user, default: []].count).filter { $0 < deadline }.count
            slowEndsTotal += slowEnded
            let bound = loginsAllowed[tenant, default: 0] + slowEnded
            loginsTotal += logins
            boundTotal += bound
            if logins > bound { outcome.broken.append("\(tenant) logged in \(logins) times; the policy allows \(bound) for its faults") }
        }
        let recovery = policy.longestRecovery(detectedByKeepalive: true)
        let unansweredLogins = (try await rig.simulatorState()["unansweredLogins"] as? Int ?? 0) - (stateBefore["unansweredLogins"] as? Int ?? 0)
        outcome.figures = [
            "time_scale": timeScale, "network_fault_seconds": (faultSeconds * 10).rounded() / 10,
            "equivalent_hours": (faultSeconds * timeScale / 360).rounded() / 10, "fault_kinds": kinds,
            "logins_during_faults": loginsTotal, "logins_allowed_by_policy": boundTotal,
            "slow_below_deadline_closed_by_client": slowEndsTotal,
            "recovery_bound_seconds": (recovery.timeInterval * 100).rounded() / 100, "recovery_missed": recoveryMissed.count,
            "upgrades_unanswered": heldUpgrades.met, "upgrade_sockets_closed_by_client": heldUpgrades.closedByClient,
            "logins_unanswered": unansweredLogins,
        ]
        return outcome
    }

    /// Arms the simulator's part of `fault` through its control API.
    private func arm(_ fault: Fault, _ url: String, _ body: [String: Any]) async throws {
        let (status, answer) = try await request("POST", url, body: body)
        guard status == 200 else { throw BenchError("arming \(fault.rawValue): \(status) \(answer)") }
    }

    /// The simulator's held upgrades (met, closed by their client, open), once none is open or after the upgrade deadline and 15 s.
    private func waitForHeldUpgradesClosed(_ rig: BenchRig) async throws -> (met: Int, closedByClient: Int, open: Int) {
        let deadline = ContinuousClock.now + ReconnectPolicy(timeScale: timeScale).upgradeTimeout + .seconds(15)
        while true {
            let state = try await rig.simulatorState()
            let held = (
                met: (state["connectFaultsMet"] as? [String: Int])?["upgrade_unanswered"] ?? 0,
                closedByClient: state["connectFaultsClosedByClient"] as? Int ?? 0, open: state["connectFaultsOpen"] as? Int ?? 0
            )
            if held.open == 0 || ContinuousClock.now > deadline { return held }
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    /// True once the tenant's session reports `state` (within 30 s).
    private func waitForState(_ rig: BenchRig, port: Int, tenant: String, state: String) async throws -> Bool {
        guard let token = rig.tokens.first(where: { $0.0 == tenant })?.1 else { return false }
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            let (_, status) = try await request("GET", "http://127.0.0.1:\(port)/tenants/\(tenant)/session/status", headers: ["x-admin-token": token])
            if status["state"] as? String == state { return true }
            try await Task.sleep(for: .milliseconds(200))
        }
        return false
    }
}
