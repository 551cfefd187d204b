/// How the pool runs sessions: lease timing, restore pacing, reconnect backoff.
public struct SessionPoolConfiguration: Sendable {
    /// Names this process as a lease owner.
    public var nodeID: String
    /// A lease not renewed for this long is free for another node.
    public var leaseTTL: Duration
    /// How often leases are renewed (one batched write) and unowned sessions looked for.
    public var heartbeatInterval: Duration
    /// At most this many restores connect at once.
    public var restoreConcurrency: Int
    /// Each restore waits a random time up to this before connecting.
    public var restoreJitter: Duration
    /// Reconnect backoff after retryable drops.
    public var backoff: Backoff
    /// How long a QR request waits for the first QR string.
    public var qrWait: Duration
    /// A link code not entered within this time ends the pairing.
    public var pairingCodeLifetime: Duration
    /// Where the pool reads the time and sleeps.
    public var clock: PoolClock
    /// The URL other nodes forward requests for this node's sessions to (its `cluster_nodes` row); nil: none.
    public var advertiseURL: String?
    /// At most this many sessions a minute are handed to other nodes to even the cluster out (0: never).
    public var balanceMovesPerMinute = 60

    public init(
        nodeID: String, leaseTTL: Duration = .seconds(30), heartbeatInterval: Duration? = nil, restoreConcurrency: Int = 64,
        restoreJitter: Duration = .milliseconds(500), backoff: Backoff = Backoff(base: .seconds(1), cap: .seconds(60)),
        qrWait: Duration = .seconds(15), pairingCodeLifetime: Duration = .seconds(180),
        clock: PoolClock = .system, advertiseURL: String? = nil
    ) {
        self.clock = clock
        self.advertiseURL = advertiseURL
        self.nodeID = nodeID
        self.leaseTTL = leaseTTL
        self.heartbeatInterval = heartbeatInterval ?? leaseTTL / 3
        self.restoreConcurrency = max(1, restoreConcurrency)
        self.restoreJitter = restoreJitter
        self.backoff = backoff
        self.qrWait = qrWait
        self.pairingCodeLifetime = pairingCodeLifetime
    }
}
