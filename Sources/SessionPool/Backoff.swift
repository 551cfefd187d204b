import WahostBasics

/// Exponential backoff with full jitter: attempt k waits a uniformly random time in [0, min(cap, base·2^(k-1))].
public struct Backoff: Sendable, Equatable {
    /// The ceiling of the first attempt's delay.
    public var base: Duration
    /// No delay is longer than this.
    public var cap: Duration

    public init(base: Duration, cap: Duration) {
        self.base = base
        self.cap = cap
    }

    /// The largest delay attempt `attempt` (1-based) may wait.
    public func ceiling(attempt: Int) -> Duration {
        let doublings = min(max(attempt - 1, 0), 30)
        let ceiling = base * (1 << doublings)
        return min(ceiling, cap)
    }

    /// A random delay for attempt `attempt` (1-based).
    public func delay<G: RandomNumberGenerator>(attempt: Int, using generator: inout G) -> Duration {
        let milliseconds = ceiling(attempt: attempt).wholeMilliseconds
        guard milliseconds > 0 else { return .zero }
        return .milliseconds(Int64.random(in: 0...milliseconds, using: &generator))
    }
}
