import Foundation
import SessionPool
import Synchronization
import WahostBasics

/// A pool clock for tests: time moves only in `advance(by:)`, and every sleeper, even a zero-length one, waits for it.
final class ManualClock: Sendable {
    private struct Sleeper {
        let wakeAt: Duration
        let length: Duration
        let continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var elapsed: Duration = .zero
        var sleepers: [UUID: Sleeper] = [:]
        var cancelledEarly: Set<UUID> = []
    }

    private let start: Date
    private let state = Mutex(State())

    init(start: Date = Date()) { self.start = start }

    /// The clock to hand to `SessionPoolConfiguration`.
    var poolClock: PoolClock {
        PoolClock(now: { [self] in now }, sleep: { [self] in try await sleep($0) })
    }

    /// The start date plus the time advanced so far.
    var now: Date { start.addingTimeInterval(state.withLock { $0.elapsed.timeInterval }) }

    /// The lengths of the sleeps waiting now.
    var pendingSleeps: [Duration] { state.withLock { $0.sleepers.values.map(\.length) } }

    /// Moves time on and wakes every sleeper whose time has come.
    func advance(by duration: Duration) {
        let due = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
            state.elapsed += duration
            let ready = state.sleepers.filter { $0.value.wakeAt <= state.elapsed }
            for id in ready.keys { state.sleepers[id] = nil }
            return ready.values.map(\.continuation)
        }
        for continuation in due { continuation.resume() }
    }

    private func sleep(_ length: Duration) async throws {
        let id = UUID()
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let cancelled = state.withLock { state -> Bool in
                    if state.cancelledEarly.remove(id) != nil { return true }
                    state.sleepers[id] = Sleeper(wakeAt: state.elapsed + length, length: length, continuation: continuation)
                    return false
                }
                if cancelled { continuation.resume(throwing: CancellationError()) }
            }
        } onCancel: {
            let waiting = state.withLock { state -> CheckedContinuation<Void, any Error>? in
                guard let sleeper = state.sleepers.removeValue(forKey: id) else {
                    state.cancelledEarly.insert(id)
                    return nil
                }
                return sleeper.continuation
            }
            waiting?.resume(throwing: CancellationError())
        }
    }
}
