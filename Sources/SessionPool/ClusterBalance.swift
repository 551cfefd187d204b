import Foundation
import Tenancy

/// How a cluster's sessions are spread: each node's fair share, which node takes each handed-over session, and how
/// many a node above its share gives away. Pure: every node computes the same answers from the same rows.
struct ClusterBalance: Sendable {
    /// Live sessions per node that takes sessions (live heartbeat, no drain asked); nodes without sessions count 0.
    let loads: [String: Int]
    /// Sessions handed over and not yet taken (they need a node too).
    let homeless: Int

    /// Sessions per node when spread evenly, rounded up (0 when no node takes sessions).
    var fairShare: Int {
        guard !loads.isEmpty else { return 0 }
        let total = loads.values.reduce(homeless, +)
        return (total + loads.count - 1) / loads.count
    }

    /// How many sessions `node` should hand over: all beyond the fair share (rounded up); and while some node is
    /// below the share rounded down and the excess does not fill it, one each from the fullest nodes (the same ones on
    /// every node: by load, then rendezvous hash), so 6 sessions on 3 nodes give a fourth node a share too.
    func excess(of node: String) -> Int {
        let load = loads[node] ?? 0
        let high = fairShare
        if load > high { return load - high }
        guard !loads.isEmpty else { return 0 }
        let low = loads.values.reduce(homeless, +) / loads.count
        let missing = loads.values.reduce(0) { $0 + max(0, low - $1) }
        let given = loads.values.reduce(homeless) { $0 + max(0, $1 - high) }
        let deficit = missing - given
        guard deficit > 0, load > low else { return 0 }
        let givers = loads.filter { $0.value > low }.keys.sorted { lhs, rhs in
            let (left, right) = (loads[lhs] ?? 0, loads[rhs] ?? 0)
            return left != right ? left > right : Self.score(Self.balanceKey, lhs) > Self.score(Self.balanceKey, rhs)
        }
        return givers.prefix(deficit).contains(node) ? 1 : 0
    }

    /// The name the givers of one session each are ranked under (any fixed name: all nodes must agree).
    private static let balanceKey = try! TenantName("balance")

    /// The node each handed-over session goes to: the least loaded below its fair share (ties: the highest rendezvous
    /// hash of tenant and node), the same on every node, so takers do not race for the same sessions.
    func assign(_ tenants: [TenantName], excluding: [TenantName: Set<String>] = [:]) -> [TenantName: String] {
        var loads = self.loads
        let fair = fairShare
        var assignment: [TenantName: String] = [:]
        for tenant in tenants.sorted(by: { $0.rawValue < $1.rawValue }) {
            let candidates = loads.filter { $0.value < fair && excluding[tenant]?.contains($0.key) != true }.map(\.key)
            // The least loaded first (so the node that gave the session away, now one below, is not chosen over an
            // empty one), then the highest rendezvous hash.
            guard let node = candidates.min(by: { lhs, rhs in
                let (left, right) = (loads[lhs] ?? 0, loads[rhs] ?? 0)
                return left != right ? left < right : Self.score(tenant, lhs) > Self.score(tenant, rhs)
            }) else { continue }
            assignment[tenant] = node
            loads[node, default: 0] += 1
        }
        return assignment
    }

    /// A stable pseudo-random score of a (tenant, node) pair: FNV-1a, then a SplitMix64 finaliser to spread it.
    static func score(_ tenant: TenantName, _ node: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in "\(tenant.rawValue)\u{0}\(node)".utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        hash = (hash ^ (hash >> 30)) &* 0xbf58_476d_1ce4_e5b9
        hash = (hash ^ (hash >> 27)) &* 0x94d0_49bb_1331_11eb
        return hash ^ (hash >> 31)
    }
}

/// Session moves allowed per minute, as a bucket refilled continuously (a burst of at most one minute's worth).
struct MoveBudget: Sendable {
    let perMinute: Int
    private var tokens: Double
    private var refilledAt: Date?

    init(perMinute: Int) {
        self.perMinute = max(0, perMinute)
        self.tokens = Double(self.perMinute)
    }

    /// Takes up to `wanted` moves; returns how many may be made now.
    mutating func take(_ wanted: Int, now: Date) -> Int {
        if let refilledAt { tokens = min(Double(perMinute), tokens + now.timeIntervalSince(refilledAt) * Double(perMinute) / 60) }
        refilledAt = now
        let granted = min(max(0, wanted), Int(tokens))
        tokens -= Double(granted)
        return granted
    }
}
