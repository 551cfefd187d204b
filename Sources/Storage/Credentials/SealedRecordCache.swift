import Synchronization
import Tenancy

/// Sealed Signal records this process read or wrote lately, shared by every tenant and bounded in bytes, so a message
/// does not read its sender's session and identity back from the database. An entry serves only while this node
/// holds the tenant's lease at the generation it was cached under: no other node can have written the record since.
/// Records stay sealed here; each use opens them under the tenant key bound to tenant, kind and key.
public final class SealedRecordCache: Sendable {
    /// Which record: the tenant instance it is sealed for, its kind and key.
    struct Key: Hashable, Sendable {
        var tenant: TenantName
        var instanceID: String?
        var kind: String
        var name: String
    }

    private struct Entry {
        /// The sealed bytes; nil: the record is known not to exist.
        var sealed: [UInt8]?
        var fence: LeaseFence
        /// The write order of this entry (the oldest written is evicted first).
        var stamp: UInt64
        var cost: Int
    }

    private struct State {
        var entries: [Key: Entry] = [:]
        /// Keys in write order; a key written again stays at its old place too, skipped by its stale stamp.
        var order: [(key: Key, stamp: UInt64)] = []
        var head = 0
        var bytes = 0
        var nextStamp: UInt64 = 1
        /// The stamp current when an entry was last evicted or forgotten: a load begun before it may hold older bytes.
        var lastRemoval: UInt64 = 0
    }

    /// The most bytes of records (and their keys) the cache keeps.
    public let byteLimit: Int
    private let state = Mutex(State())

    public init(byteLimit: Int = 8 << 20) {
        self.byteLimit = byteLimit
    }

    /// What a load reads from the cache: the records it holds for `keys` under `fence` (nil bytes: known absent), and
    /// a mark for ``remember(_:loadedSince:fence:)`` of what the database returns for the rest.
    func lookup(_ keys: [Key], fence: LeaseFence?) -> (found: [Key: [UInt8]?], mark: UInt64) {
        state.withLock { state in
            var found: [Key: [UInt8]?] = [:]
            guard let fence, case .holder = fence else { return (found, state.nextStamp) }
            for key in keys {
                if let entry = state.entries[key], entry.fence == fence { found[key] = entry.sealed }
            }
            return (found, state.nextStamp)
        }
    }

    /// Caches records a load read from the database (nil: absent), unless a write or removal since `mark` may have made
    /// them stale, or a newer entry is there.
    func remember(_ loaded: [Key: [UInt8]?], loadedSince mark: UInt64, fence: LeaseFence?) {
        guard let fence, case .holder = fence, !loaded.isEmpty else { return }
        state.withLock { state in
            guard state.lastRemoval < mark else { return }
            for (key, sealed) in loaded {
                if let entry = state.entries[key], entry.stamp >= mark || entry.fence == fence { continue }
                Self.put(key, sealed: sealed, fence: fence, into: &state, limit: byteLimit)
            }
        }
    }

    /// Caches records just written durably under `fence` (nil: deleted); without a holder fence, forgets them.
    func stored(_ written: [Key: [UInt8]?], fence: LeaseFence?) {
        guard let fence, case .holder = fence else { return forget(Array(written.keys)) }
        state.withLock { state in
            for (key, sealed) in written { Self.put(key, sealed: sealed, fence: fence, into: &state, limit: byteLimit) }
        }
    }

    /// Drops records whose stored state is unknown (a write that failed).
    func forget(_ keys: [Key]) {
        state.withLock { state in
            for key in keys {
                if let entry = state.entries.removeValue(forKey: key) { state.bytes -= entry.cost }
            }
            state.lastRemoval = state.nextStamp
            state.nextStamp += 1
        }
    }

    /// The bytes and entries held now.
    public var usage: (bytes: Int, entries: Int) { state.withLock { ($0.bytes, $0.entries.count) } }

    private static func put(_ key: Key, sealed: [UInt8]?, fence: LeaseFence, into state: inout State, limit: Int) {
        let cost = (sealed?.count ?? 0) + key.kind.utf8.count + key.name.utf8.count + (key.instanceID?.utf8.count ?? 0) + 96
        let stamp = state.nextStamp
        state.nextStamp += 1
        if let old = state.entries.updateValue(Entry(sealed: sealed, fence: fence, stamp: stamp, cost: cost), forKey: key) { state.bytes -= old.cost }
        state.bytes += cost
        state.order.append((key, stamp))
        while state.bytes > limit, state.head < state.order.count {
            let (oldest, oldStamp) = state.order[state.head]
            state.head += 1
            guard let entry = state.entries[oldest], entry.stamp == oldStamp else { continue }
            state.entries[oldest] = nil
            state.bytes -= entry.cost
            state.lastRemoval = stamp
        }
        if state.head > 1024, state.head * 2 > state.order.count {
            state.order.removeFirst(state.head)
            state.head = 0
        }
        if state.order.count > 4 * max(1024, state.entries.count) {
            state.order = state.order.filter { state.entries[$0.key]?.stamp == $0.stamp }
            state.head = 0
        }
    }
}
