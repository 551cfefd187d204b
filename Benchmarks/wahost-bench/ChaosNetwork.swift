import Foundation
import WahostBasics

/// `chaos --network-faults N`: faults the simulator applies to live sessions at random moments, the way WhatsApp's
/// servers and networks do: a silent drop, `<stream:error code="515">` (restart), `503`, and, for a few accounts,
/// the terminal ones (`conflict replaced`, `device_removed`).
extension Chaos {
    /// What the faults came to: the tenants ended for good, and each broken promise.
    struct NetworkFaultOutcome {
        var terminal: Set<String> = []
        var faults = 0
        var broken: [String] = []
    }

    func applyNetworkFaults(_ rig: BenchRig, port: Int, sent: SentTexts, generator: inout SeededGenerator) async throws -> NetworkFaultOutcome {
        var outcome = NetworkFaultOutcome()
        let names = rig.tokens.map(\.0)
        let loginsBefore = try await rig.simulatorState()["logins"] as? [String: Int] ?? [:]
        var faultsOn: [String: Int] = [:]
        var lastFault: [String: ContinuousClock.Instant] = [:]
        var expectedState: [String: String] = [:]
        for _ in 0..<networkFaults {
            try await Task.sleep(for: .milliseconds(Int64(Double.random(in: 0...cycleSeconds, using: &generator) * 1000)))
            let live = try await rig.simulatorState()["liveConnections"] as? [String: Int] ?? [:]
            let candidates = names.filter { expectedState[$0] == nil }
            guard let tenant = candidates.randomElement(using: &generator), let user = rig.accounts[tenant] else { break }
            let roll = Double.random(in: 0..<1, using: &generator)
            // At most a third of the tenants end for good, and only while connected (a terminal error reaches live
            // connections only; a session between connections would never see it).
            // A connection dropped by an earlier fault is counted live until its socket has closed: leave 3 s.
            let quiet = lastFault[tenant].map { ContinuousClock.now - $0 > .seconds(3) } ?? true
            let mayEnd = expectedState.count < max(1, names.count / 3) && live[user] == 1 && quiet
            let path: String
            var body: [String: Any] = [:]
            switch roll {
            case ..<0.4: path = "drop"
            case ..<0.7: (path, body) = ("stream-error", ["code": 515])
            case ..<0.9: (path, body) = ("stream-error", ["code": 503])
            case ..<0.95 where mayEnd:
                (path, body) = ("stream-error", ["conflict": "replaced"])
                expectedState[tenant] = "replaced"
            default:
                guard mayEnd else { continue }
                path = "remove-device"
                expectedState[tenant] = "logged_out"
            }
            if expectedState[tenant] != nil { sent.stop(tenant) }
            let (status, answer) = try await request("POST", rig.control + "/accounts/\(user)/\(path)", body: body)
            guard status == 200 else { throw BenchError("fault \(path) on \(user): \(status) \(answer)") }
            faultsOn[tenant, default: 0] += 1
            lastFault[tenant] = ContinuousClock.now
            outcome.faults += 1
        }
        outcome.terminal = Set(expectedState.keys)

        // Every other session is connected again; each ended one is in its state and stays there.
        let running = names.count - outcome.terminal.count
        if try await rig.waitConnected(expected: running, timeout: .seconds(60)) != running {
            outcome.broken.append("sessions not connected again after the network faults")
        }
        for (tenant, state) in expectedState where try await !waitForState(rig, port: port, tenant: tenant, state: state) {
            outcome.broken.append("\(tenant) is not \(state) after its terminal fault")
        }
        let loginsAtEnd = try await rig.simulatorState()["logins"] as? [String: Int] ?? [:]
        try await Task.sleep(for: .seconds(5))
        let loginsLater = try await rig.simulatorState()["logins"] as? [String: Int] ?? [:]
        for tenant in outcome.terminal {
            guard let user = rig.accounts[tenant], loginsLater[user, default: 0] != loginsAtEnd[user, default: 0] else { continue }
            outcome.broken.append("\(tenant) logged in again after \(expectedState[tenant] ?? "its end")")
        }
        // No storm: a retryable fault costs a login or two (a 503 may be retried after backoff), never a loop.
        for tenant in names where !outcome.terminal.contains(tenant) {
            guard let user = rig.accounts[tenant] else { continue }
            let logins = loginsLater[user, default: 0] - loginsBefore[user, default: 0]
            let bound = 2 * faultsOn[tenant, default: 0] + 1
            if logins > bound { outcome.broken.append("\(tenant) logged in \(logins) times for \(faultsOn[tenant, default: 0]) faults") }
        }
        return outcome
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
