import Foundation

/// One node of a cluster as its row says: where other nodes reach it and when it last beat.
public struct ClusterNode: Sendable, Equatable {
    /// The node id leases are taken under.
    public var nodeID: String
    /// The internal URL other nodes forward requests to (`serve --advertise-url`); nil when the node has none.
    public var advertiseURL: String?
    /// When the node's pool started.
    public var startedAt: Date
    /// The node's last heartbeat.
    public var lastBeatAt: Date
    /// An operator asked the node to hand every session over and take none (`POST /operator/nodes/{id}/drain`).
    public var drainRequested: Bool

    public init(nodeID: String, advertiseURL: String?, startedAt: Date, lastBeatAt: Date, drainRequested: Bool = false) {
        self.nodeID = nodeID
        self.advertiseURL = advertiseURL
        self.startedAt = startedAt
        self.lastBeatAt = lastBeatAt
        self.drainRequested = drainRequested
    }
}

/// The `cluster_nodes` table: every node's advertised address and heartbeat.
public protocol ClusterNodeRepository: Sendable {
    /// Upserts this node's row (a new `startedAt` clears a drain request made before it), deletes other rows silent since
    /// `forgetBefore`, and returns every row (one round trip).
    func beatNode(_ node: ClusterNode, forgetBefore: Date) async throws(RepositoryError) -> [ClusterNode]
    /// Deletes the node's row (it stopped on purpose).
    func removeNode(_ nodeID: String) async throws(RepositoryError)
    /// Every row, ordered by node id.
    func clusterNodes() async throws(RepositoryError) -> [ClusterNode]
    /// Asks the node to drain (or to take sessions again); false when no such node has a row. A node's new start
    /// clears a request made before that start, not one made at or after it (before the start's first heartbeat).
    func setDrainRequested(_ requested: Bool, for nodeID: String, at now: Date) async throws(RepositoryError) -> Bool
}
