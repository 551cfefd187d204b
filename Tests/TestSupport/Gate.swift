/// A gate a test closes and opens: callers that reach it while closed wait until it opens. Counts arrivals.
public actor Gate {
    private var closed = false
    private var waiting: [CheckedContinuation<Void, Never>] = []
    /// How many callers reached the gate.
    public private(set) var arrivals = 0
    /// How many callers are waiting at it now.
    public var waitingCount: Int { waiting.count }

    public init() {}

    /// From now on, callers wait.
    public func close() { closed = true }

    /// Lets every waiting and later caller through.
    public func open() {
        closed = false
        let released = waiting
        waiting = []
        for continuation in released { continuation.resume() }
    }

    /// Passes the gate, waiting while it is closed.
    public func pass() async {
        arrivals += 1
        guard closed else { return }
        await withCheckedContinuation { waiting.append($0) }
    }
}
