import Synchronization
import WhatsApp

/// Client timers for tests: nothing fires until the test fires it.
final class ManualTimers: Sendable {
    private struct Timer {
        let delay: Duration
        let body: @Sendable () -> Void
    }

    private struct State {
        var nextID: UInt64 = 0
        var armed: [UInt64: Timer] = [:]
    }

    private let state = Mutex(State())

    /// The timers to put in `WhatsAppClientConfiguration`.
    var clientTimers: ClientTimers {
        ClientTimers { [self] delay, body in arm(delay, body) }
    }

    /// The delays of the timers armed and neither fired nor cancelled.
    var armed: [Duration] { state.withLock { $0.armed.values.map(\.delay) } }

    /// Fires every armed timer with this delay; returns how many fired.
    @discardableResult
    func fire(delay: Duration) -> Int {
        let due = state.withLock { state -> [Timer] in
            let matching = state.armed.filter { $0.value.delay == delay }
            for id in matching.keys { state.armed[id] = nil }
            return Array(matching.values)
        }
        for timer in due { timer.body() }
        return due.count
    }

    private func arm(_ delay: Duration, _ body: @escaping @Sendable () -> Void) -> ClientTimer {
        let id = state.withLock { state -> UInt64 in
            state.nextID += 1
            state.armed[state.nextID] = Timer(delay: delay, body: body)
            return state.nextID
        }
        return ClientTimer { [self] in _ = state.withLock { $0.armed.removeValue(forKey: id) } }
    }
}
