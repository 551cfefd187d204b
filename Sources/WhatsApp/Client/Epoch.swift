/// A counter that moves on at every lifecycle change; work stamped under an older value is stale and is dropped.
///
/// The client stamps each connection (timers, the prekey task, requests) and each credential wipe with one; the
/// session pool stamps each session's lifecycle (runner start and end, terminal states, logout) so that a decision
/// made on data read before a change (a restore queued from a stale scan) is dropped instead of acted on.
public struct Epoch: Sendable, Equatable {
    /// The value work is stamped with now.
    public private(set) var current: UInt64 = 0

    public init() {}

    /// Moves on: everything stamped before is stale from now on. Returns the new stamp.
    @discardableResult
    public mutating func advance() -> UInt64 {
        current &+= 1
        return current
    }

    /// True when work stamped with `stamp` is still current.
    public func admits(_ stamp: UInt64) -> Bool { stamp == current }
}
