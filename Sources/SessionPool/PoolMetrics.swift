import Foundation
import Metrics

/// The pool's metrics: sessions per state, reconnects, pairing outcomes, restore backlog.
struct PoolMetrics: Sendable {
    let reconnects = Counter(label: "wahost_session_reconnects_total")
    let restorePending = Gauge(label: "wahost_sessions_restore_pending")
    private let counts = StateCounts()

    func pairings(_ outcome: SessionLifecycle.PairingOutcome) -> Counter {
        Counter(label: "wahost_pairings_total", dimensions: [("result", outcome.rawValue)])
    }

    func entered(_ state: SessionState) { record(state, counts.add(state, 1)) }
    func left(_ state: SessionState) { record(state, counts.add(state, -1)) }

    private func record(_ state: SessionState, _ count: Int) {
        Gauge(label: "wahost_sessions", dimensions: [("state", state.rawValue)]).record(count)
    }
}

/// Sessions per state, for the gauge.
private final class StateCounts: @unchecked Sendable {
    private let lock = NSLock()
    private var counts: [SessionState: Int] = [:]
    func add(_ state: SessionState, _ delta: Int) -> Int {
        lock.withLock {
            counts[state, default: 0] += delta
            return counts[state]!
        }
    }
}
