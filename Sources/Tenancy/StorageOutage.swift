import Foundation
import Logging
import Synchronization

/// The system database's health as its calls see it: logs an outage once when it begins and once when it ends, and
/// while it lasts lets one call a second through to probe the database while the others fail at once.
public final class StorageOutage: Sendable {
    private struct State {
        var since: ContinuousClock.Instant?
        var lastProbe: ContinuousClock.Instant?
        var failedCalls = 0
        var lastError = ""
        /// The last call that succeeded: a slow call that others overtook says the database is slow, not away.
        var lastSuccess: ContinuousClock.Instant?
    }

    /// How often a call is let through to the database while it is away.
    public static let probeInterval = Duration.seconds(1)
    /// The `retry_after` a refusal during an outage suggests, in seconds.
    public static let retryAfterSeconds = 5

    private let state = Mutex(State())
    private let backend: String
    private let logger: Logger

    public init(backend: String, logger: Logger) {
        self.backend = backend
        self.logger = logger
    }

    /// Whether the last call found the database away.
    public var isUnavailable: Bool { state.withLock { $0.since != nil } }

    /// Nil when a call may go to the database; during an outage, the error to fail it with at once (one call per
    /// ``probeInterval`` is let through).
    public func refusal(now: ContinuousClock.Instant = .now) -> RepositoryError? {
        state.withLock { state -> RepositoryError? in
            guard state.since != nil else { return nil }
            if let last = state.lastProbe, now - last < Self.probeInterval {
                state.failedCalls += 1
                return RepositoryError(.unavailable, "\(backend) unavailable: \(state.lastError)")
            }
            state.lastProbe = now
            return nil
        }
    }

    /// When a failed call started, the deadline it had, and whether that deadline ended it.
    public struct FailedCall: Sendable {
        public var startedAt: ContinuousClock.Instant
        public var deadline: Duration
        public var timedOut: Bool

        public init(startedAt: ContinuousClock.Instant, deadline: Duration, timedOut: Bool) {
            self.startedAt = startedAt
            self.deadline = deadline
            self.timedOut = timedOut
        }
    }

    /// A call that ends this much later than its deadline spanned a time this process did not run.
    public static let stallTolerance = Duration.seconds(2)

    /// Records a call's failure: the first one of an outage is logged (an `.unavailable` error only). A call that ran
    /// out of time begins no outage when another call succeeded meanwhile (it waited on a lock), and a call that ended
    /// well past its deadline begins none either: the process was stopped meanwhile (SIGSTOP, a paused VM), its timer
    /// could not fire, and what the call met on waking (its deadline gone, a connection the server closed) says nothing
    /// about the database.
    public func failed(_ error: RepositoryError, call: FailedCall? = nil, now: ContinuousClock.Instant = .now) {
        guard error.kind == .unavailable else { return }
        if let call, now - call.startedAt > call.deadline + Self.stallTolerance { return }
        let began = state.withLock { state -> Bool in
            if state.since == nil, let call, call.timedOut, let lastSuccess = state.lastSuccess, lastSuccess >= call.startedAt { return false }
            state.failedCalls += 1
            state.lastError = error.message
            guard state.since == nil else { return false }
            state.since = now
            state.lastProbe = now
            return true
        }
        if began {
            logger.error(
                "storage unavailable; requests that need it are refused with 503 and retried in the background until it returns",
                metadata: ["backend": "\(backend)", "error": "\(error.message)"])
        }
    }

    /// Records a call's success: ends an outage (logged once, with its length and the calls it failed).
    public func succeeded(now: ContinuousClock.Instant = .now) {
        let ended = state.withLock { state -> (Duration, Int)? in
            state.lastSuccess = now
            guard let since = state.since else { return nil }
            defer { state = State(lastSuccess: now) }
            return (now - since, state.failedCalls)
        }
        if let (length, failed) = ended {
            logger.warning(
                "storage available again",
                metadata: ["backend": "\(backend)", "outage_seconds": "\(length.components.seconds)", "failed_calls": "\(failed)"])
        }
    }
}

extension Logger {
    /// Logs a failed storage call at `level`, or at debug when the database is away (its store logged the outage once).
    public func storageFailure(_ message: @autoclosure () -> Logger.Message, _ error: any Error, level: Logger.Level = .warning, metadata: Logger.Metadata = [:]) {
        let away = (error as? RepositoryError)?.kind == .unavailable || (error as? TenancyError)?.kind == .storage
        log(level: away ? .debug : level, message(), metadata: metadata.merging(["error": "\(error)"]) { $1 })
    }
}
