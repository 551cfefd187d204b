import Synchronization

/// Durable writes that build on each other (one connection's Signal state), committed in the order they were queued:
/// once one fails, the later ones fail unwritten, since a later state stored without an earlier one would skip the
/// message in between.
public final class WriteChain: Sendable {
    private let broken = Mutex(false)

    public init() {}

    /// True once a write of the chain failed (or the chain was given up).
    public var isBroken: Bool { broken.withLock { $0 } }

    /// Fails every write of the chain not committed yet, and every later one.
    public func breakOff() { broken.withLock { $0 = true } }
}
