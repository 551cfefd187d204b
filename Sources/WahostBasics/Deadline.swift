import Synchronization

/// Runs work with a deadline that returns on time even when the work ignores cancellation.
public enum Deadline {
    /// The work's result, or `timeout(limit)` thrown once `limit` passed (the work is then cancelled, not awaited).
    /// The caller's cancellation does not cut the work short: a write a cancelled caller started (a logout's wipe, a
    /// shutdown's release) still lands, within the same limit.
    public static func run<T: Sendable>(
        within limit: Duration, _ work: @escaping @Sendable () async throws -> T, timeout: @escaping @Sendable (Duration) -> any Error
    ) async throws -> T {
        let pending = PendingResult<T>()
        return try await withCheckedThrowingContinuation { continuation in
            pending.install(continuation)
            let worker = Task { pending.finish(with: await Result(catching: { try await work() })) }
            let timer = Task {
                try? await Task.sleep(for: limit)
                if pending.finish(with: .failure(timeout(limit))) { worker.cancel() }
            }
            pending.onFinish { worker.cancel(); timer.cancel() }
        }
    }
}

/// The one continuation a deadline race resumes, by whichever side finishes first.
private final class PendingResult<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T, any Error>?
        var early: Result<T, any Error>?
        var finished = false
        var cleanup: (@Sendable () -> Void)?
    }

    private let state = Mutex(State())

    func install(_ continuation: CheckedContinuation<T, any Error>) {
        let early = state.withLock { state -> Result<T, any Error>? in
            guard let early = state.early else {
                state.continuation = continuation
                return nil
            }
            return early
        }
        if let early { continuation.resume(with: early) }
    }

    /// Resumes the waiter with `result` unless another result came first; true if this one won.
    @discardableResult
    func finish(with result: Result<T, any Error>) -> Bool {
        let (won, continuation, cleanup) = state.withLock { state -> (Bool, CheckedContinuation<T, any Error>?, (@Sendable () -> Void)?) in
            guard !state.finished else { return (false, nil, nil) }
            state.finished = true
            guard let continuation = state.continuation else {
                state.early = result
                return (true, nil, nil)
            }
            state.continuation = nil
            defer { state.cleanup = nil }
            return (true, continuation, state.cleanup)
        }
        continuation?.resume(with: result)
        cleanup?()
        return won
    }

    /// Runs `cleanup` once the race is decided (at once if it is).
    func onFinish(_ cleanup: @escaping @Sendable () -> Void) {
        let now = state.withLock { state -> Bool in
            guard !state.finished else { return true }
            state.cleanup = cleanup
            return false
        }
        if now { cleanup() }
    }
}

extension Result where Failure == any Error {
    /// The outcome of async throwing work.
    init(catching work: () async throws -> Success) async {
        do { self = .success(try await work()) } catch { self = .failure(error) }
    }
}
