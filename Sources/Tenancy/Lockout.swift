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
    /// Counted as a failure of every key until a success forgets it; `locking` if this attempt reached the limit.
    case counted(locking: Bool)
}

/// Counts authentication failures per key (a tenant, a client address) and locks keys that fail too often.
/// Memory is bounded: at most `capacity` keys are tracked, the stalest are dropped first.
public actor LockoutTracker {
    private struct Entry {
        var failures: [Date] = []
        var lockedUntil: Date?
    }

    private let policy: LockoutPolicy
    private let capacity: Int
    private var entries: [String: Entry] = [:]

    public init(policy: LockoutPolicy, capacity: Int = 100_000) {
        self.policy = policy
        self.capacity = capacity
    }

    /// The instant until which `key` is locked, if it is locked at `now`.
    public func lockedUntil(_ key: String, now: Date) -> Date? {
        guard let until = entries[key]?.lockedUntil, until > now else { return nil }
        return until
    }

    /// In one step: refuses if any of `keys` is locked, else counts this attempt as a failure of each (a success forgets it),
    /// so concurrent guesses cannot all pass the check before the first one is counted.
    public func beginAttempt(_ keys: [String], now: Date) -> AttemptAdmission {
        if let until = keys.compactMap({ lockedUntil($0, now: now) }).max() { return .refused(until: until) }
        var locking = false
        for key in keys where recordFailure(key, now: now) != nil { locking = true }
        return .counted(locking: locking)
    }

    /// Takes back an attempt counted by ``beginAttempt(_:now:)`` at `now` that ended without an answer (the database
    /// was away): neither a failure nor, if it reached the limit, the lockout it started.
    public func withdrawAttempt(_ keys: [String], now: Date) {
        for key in keys {
            guard var entry = entries[key] else { continue }
            if entry.failures.isEmpty, entry.lockedUntil == now.addingTimeInterval(policy.lockoutDuration.timeInterval) {
                entry.lockedUntil = nil
                entry.failures = Array(repeating: now, count: max(0, policy.maximumFailures - 1))
            } else if let index = entry.failures.lastIndex(of: now) {
                entry.failures.remove(at: index)
            }
            entries[key] = entry
        }
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
        if entries[key]?.lockedUntil == nil { entries[key] = nil } else { entries[key]?.failures.removeAll() }
    }

    private func evictStale(now: Date) {
        let windowStart = now.addingTimeInterval(-policy.window.timeInterval)
        entries = entries.filter { _, entry in
            (entry.lockedUntil.map { $0 > now } ?? false) || (entry.failures.last.map { $0 >= windowStart } ?? false)
        }
        if entries.count >= capacity, let oldest = entries.min(by: { ($0.value.failures.last ?? .distantPast) < ($1.value.failures.last ?? .distantPast) }) {
            entries[oldest.key] = nil
        }
    }
}
