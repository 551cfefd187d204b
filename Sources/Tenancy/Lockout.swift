import Foundation
import WahostBasics

/// How many failures lock a key out, over which window, for how long.
public struct LockoutPolicy: Sendable, Equatable {
    /// Failures within `window` that trigger a lockout.
    public var maximumFailures: Int
    /// The sliding window over which failures are counted.
    public var window: Duration
    /// How long a lockout lasts.
    public var lockoutDuration: Duration

    public init(maximumFailures: Int, window: Duration, lockoutDuration: Duration) {
        self.maximumFailures = maximumFailures
        self.window = window
        self.lockoutDuration = lockoutDuration
    }

    /// 10 failures in 10 minutes lock the tenant or address out for 15 minutes.
    public static let standard = LockoutPolicy(maximumFailures: 10, window: .seconds(600), lockoutDuration: .seconds(900))
}

/// Whether an authentication attempt may go on.
public enum AttemptAdmission: Sendable, Equatable {
    /// A key was locked already: refuse without looking at the credential.
    case refused(until: Date)
    /// Under way: end it with ``LockoutTracker/endAttempt(_:_:now:)``.
    case admitted
}

/// How an admitted attempt ended.
public enum AttemptOutcome: Sendable, Equatable {
    /// The credential matched: the keys' failures are forgotten.
    case succeeded
    /// It did not: a failure of every key, which may lock it.
    case failed
    /// No answer was reached (the database was away): neither.
    case withdrawn
}

/// Counts authentication failures per key (a tenant, a client address) and locks keys that fail too often.
/// Memory is bounded: at most `capacity` keys are tracked, the stalest are dropped first.
public actor LockoutTracker {
    private struct Entry {
        var failures: [Date] = []
        var lockedUntil: Date?
        /// Attempts admitted and not ended yet.
        var underWay = 0
    }

    private let policy: LockoutPolicy
    private let capacity: Int
    private var entries: [String: Entry] = [:]
    /// Attempts waiting for one under way to end.
    private var waiting: [CheckedContinuation<Void, Never>] = []

    /// How many attempts wait for one under way to end.
    public var waitingAttempts: Int { waiting.count }

    public init(policy: LockoutPolicy, capacity: Int = 100_000) {
        self.policy = policy
        self.capacity = capacity
    }

    /// The instant until which `key` is locked, if it is locked at `now`.
    public func lockedUntil(_ key: String, now: Date) -> Date? {
        guard let until = entries[key]?.lockedUntil, until > now else { return nil }
        return until
    }

    /// The latest lockout end among `keys` at `now`, if one is locked.
    public func lockedUntil(anyOf keys: [String], now: Date) -> Date? { keys.compactMap { lockedUntil($0, now: now) }.max() }

    /// Refuses if one of `keys` is locked, else admits the attempt. While a key has as many attempts under way as
    /// failures left before its lockout, the attempt waits for one to end: concurrent guesses never outnumber the
    /// failures left, and concurrent requests with good credentials are not counted as failures.
    public func beginAttempt(_ keys: [String], now: @Sendable () -> Date) async -> AttemptAdmission {
        while true {
            let moment = now()
            if let until = lockedUntil(anyOf: keys, now: moment) { return .refused(until: until) }
            let windowStart = moment.addingTimeInterval(-policy.window.timeInterval)
            let full = keys.contains { key in
                guard let entry = entries[key], entry.underWay > 0 else { return false }
                return entry.failures.count(where: { $0 >= windowStart }) + entry.underWay >= policy.maximumFailures
            }
            if !full {
                for key in keys {
                    if entries[key] == nil, entries.count >= capacity { evictStale(now: moment) }
                    entries[key, default: Entry()].underWay += 1
                }
                return .admitted
            }
            await withCheckedContinuation { waiting.append($0) }
        }
    }

    /// Ends an attempt admitted by ``beginAttempt(_:now:)``; returns the lockout end if its failure locked a key.
    @discardableResult
    public func endAttempt(_ keys: [String], _ outcome: AttemptOutcome, now: Date) -> Date? {
        var locked: Date?
        for key in keys {
            if let underWay = entries[key]?.underWay, underWay > 0 { entries[key]?.underWay = underWay - 1 }
            switch outcome {
            case .succeeded: recordSuccess(key)
            case .failed:
                // Only a lock this failure began: attempts still under way when a key locks report none.
                let before = lockedUntil(key, now: now)
                if let until = recordFailure(key, now: now), before == nil { locked = until }
            case .withdrawn: if let entry = entries[key], entry.failures.isEmpty, entry.lockedUntil == nil, entry.underWay == 0 { entries[key] = nil }
            }
        }
        let resumed = waiting
        waiting.removeAll()
        for continuation in resumed { continuation.resume() }
        return locked
    }

    /// Records a failure; returns the lockout end if this failure locked the key.
    @discardableResult
    public func recordFailure(_ key: String, now: Date) -> Date? {
        if entries[key] == nil, entries.count >= capacity { evictStale(now: now) }
        var entry = entries[key] ?? Entry()
        let windowStart = now.addingTimeInterval(-policy.window.timeInterval)
        entry.failures.removeAll { $0 < windowStart }
        entry.failures.append(now)
        if entry.failures.count >= policy.maximumFailures {
            entry.lockedUntil = now.addingTimeInterval(policy.lockoutDuration.timeInterval)
            entry.failures.removeAll()
        }
        entries[key] = entry
        return entry.lockedUntil.flatMap { $0 > now ? $0 : nil }
    }

    /// Forgets the failures of `key` (after a success).
    public func recordSuccess(_ key: String) {
        guard let entry = entries[key] else { return }
        if entry.lockedUntil == nil, entry.underWay == 0 { entries[key] = nil } else { entries[key]?.failures.removeAll() }
    }

    /// Forgets the failures of every one of `keys`.
    public func recordSuccess(_ keys: [String]) { for key in keys { recordSuccess(key) } }

    private func evictStale(now: Date) {
        let windowStart = now.addingTimeInterval(-policy.window.timeInterval)
        entries = entries.filter { _, entry in
            entry.underWay > 0 || (entry.lockedUntil.map { $0 > now } ?? false) || (entry.failures.last.map { $0 >= windowStart } ?? false)
        }
        if entries.count >= capacity, let oldest = entries.lazy.filter({ $0.value.underWay == 0 }).min(by: { ($0.value.failures.last ?? .distantPast) < ($1.value.failures.last ?? .distantPast) }) {
            entries[oldest.key] = nil
        }
    }
}
