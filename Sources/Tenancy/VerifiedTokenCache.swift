import Crypto
import Foundation
import WahostBasics

/// Remembers which (token, stored hash) pairs argon2 already verified, so a token costs one argon2 run per `lifetime`.
/// An entry is valid only for the exact stored hash it was verified against: rotating a token changes the hash,
/// so the old token misses the cache at once, in this process and in every other that shares the database.
public actor VerifiedTokenCache {
    private struct Entry {
        var storedHash: String
        var verifiedAt: Date
    }

    private let lifetime: Duration
    private let capacity: Int
    private var entries: [SHA256Digest: Entry] = [:]

    public init(lifetime: Duration = .seconds(300), capacity: Int = 50_000) {
        self.lifetime = lifetime
        self.capacity = capacity
    }

    /// True if `token` was verified against `storedHash` within the lifetime.
    public func contains(token: String, storedHash: String, now: Date) -> Bool {
        guard let entry = entries[Self.key(token)] else { return false }
        return entry.storedHash == storedHash && now.timeIntervalSince(entry.verifiedAt) < lifetime.timeInterval
            && entry.verifiedAt <= now
    }

    /// Records a successful verification.
    public func insert(token: String, storedHash: String, now: Date) {
        if entries.count >= capacity {
            let cutoff = now.addingTimeInterval(-lifetime.timeInterval)
            entries = entries.filter { $0.value.verifiedAt >= cutoff }
            if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
        }
        entries[Self.key(token)] = Entry(storedHash: storedHash, verifiedAt: now)
    }

    /// Drops every entry verified against `storedHash` (called when that hash is replaced).
    public func invalidate(storedHash: String) {
        entries = entries.filter { $0.value.storedHash != storedHash }
    }

    /// The number of cached entries (for tests and metrics).
    public var count: Int { entries.count }

    private static func key(_ token: String) -> SHA256Digest { SHA256.hash(data: Array(token.utf8)) }
}
