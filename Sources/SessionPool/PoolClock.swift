import Foundation

/// The pool's sense of time: wall time for lease records and statuses, sleeps for heartbeats, backoff, restore
/// jitter and pairing deadlines. Production uses the system clock; tests inject one they advance by hand.
public struct PoolClock: Sendable {
    /// The current wall time.
    public let now: @Sendable () -> Date
    /// Suspends for the duration; throws `CancellationError` when the task is cancelled.
    public let sleep: @Sendable (Duration) async throws -> Void

    public init(now: @escaping @Sendable () -> Date, sleep: @escaping @Sendable (Duration) async throws -> Void) {
        self.now = now
        self.sleep = sleep
    }

    /// `Date()` and `Task.sleep`.
    public static let system = PoolClock(now: { Date() }, sleep: { try await Task.sleep(for: $0) })
}
