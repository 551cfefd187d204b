import Dispatch
import Synchronization

/// Bounds argon2 work (64 MiB and a core each): at most `maximumRunning` at once, at most `maximumWaiting` queued.
public final class Argon2Gate: Sendable {
    /// What the gate is doing, for tests and metrics.
    public struct Load: Sendable, Equatable {
        /// Runs in progress.
        public var running: Int
        /// Callers queued for a slot.
        public var waiting: Int
        /// The most runs ever in progress at once.
        public var peakRunning: Int
        /// Callers turned away because the queue was full.
        public var refused: Int
    }

    private struct State {
        var running = 0
        var waiters: [CheckedContinuation<Bool, Never>] = []
        var peakRunning = 0
        var refused = 0
    }

    private enum Admission { case run, wait, refuse }

    /// Runs allowed at once.
    public let maximumRunning: Int
    /// Callers allowed to wait for a slot; more are refused.
    public let maximumWaiting: Int
    private let state = Mutex(State())
    private static let queue = DispatchQueue(label: "wahost.argon2", qos: .userInitiated, attributes: .concurrent)

    public init(maximumRunning: Int, maximumWaiting: Int) {
        self.maximumRunning = max(1, maximumRunning)
        self.maximumWaiting = max(0, maximumWaiting)
    }

    /// The current load.
    public var load: Load {
        state.withLock { Load(running: $0.running, waiting: $0.waiters.count, peakRunning: $0.peakRunning, refused: $0.refused) }
    }

    /// Runs `work` on the argon2 threads once a slot is free; nil when `refusable` and the queue is full.
    func run<Value: Sendable>(refusable: Bool, _ work: @escaping @Sendable () -> Value) async -> Value? {
        let admitted = await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let admission = state.withLock { state -> Admission in
                if state.running < maximumRunning {
                    state.running += 1
                    state.peakRunning = max(state.peakRunning, state.running)
                    return .run
                }
                if !refusable || state.waiters.count < maximumWaiting {
                    state.waiters.append(continuation)
                    return .wait
                }
                state.refused += 1
                return .refuse
            }
            switch admission {
            case .run: continuation.resume(returning: true)
            case .wait: break
            case .refuse: continuation.resume(returning: false)
            }
        }
        guard admitted else { return nil }
        let value = await withCheckedContinuation { continuation in Self.queue.async { continuation.resume(returning: work()) } }
        release()
        return value
    }

    /// Hands the slot to the next waiter, or frees it.
    private func release() {
        let next = state.withLock { state -> CheckedContinuation<Bool, Never>? in
            guard !state.waiters.isEmpty else {
                state.running -= 1
                return nil
            }
            return state.waiters.removeFirst()
        }
        next?.resume(returning: true)
    }
}
