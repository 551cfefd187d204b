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

    public init(nodeID: String, advertiseURL: String?, startedAt: Date, lastBeatAt: Date) {
        self.nodeID = nodeID
        self.advertiseURL = advertiseURL
        self.startedAt = startedAt
        self.lastBeatAt = lastBeatAt
    }
}

/// The `cluster_nodes` table: every node's advertised address and heartbeat.
public protocol ClusterNodeRepository: Sendable {
    /// Upserts this node's row, deletes other rows silent since `forgetBefore`, and returns every row (one round trip).
    func beatNode(_ node: ClusterNode, forgetBefore: Date) async throws(RepositoryError) -> [ClusterNode]
    /// Deletes the node's row (it stopped on purpose).
    func removeNode(_ nodeID: String) async throws(RepositoryError)
    /// Every row, ordered by node id.
    func clusterNodes() async throws(RepositoryError) -> [ClusterNode]
}
