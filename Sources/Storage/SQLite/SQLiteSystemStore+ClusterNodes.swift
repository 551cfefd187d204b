import Foundation
import GRDB
import Tenancy

extension SQLiteSystemStore {
    public func beatNode(_ node: ClusterNode, forgetBefore: Date) async throws(RepositoryError) -> [ClusterNode] {
        try await write { db in
            try db.execute(
                sql: """
                    INSERT INTO cluster_nodes (node_id, advertise_url, started_at_ms, last_beat_at_ms) VALUES (?, ?, ?, ?)
                    ON CONFLICT (node_id) DO UPDATE SET advertise_url = excluded.advertise_url, started_at_ms = excluded.started_at_ms,
                        last_beat_at_ms = excluded.last_beat_at_ms,
                        drain_requested_at_ms = CASE WHEN cluster_nodes.started_at_ms = excluded.started_at_ms
                            OR cluster_nodes.drain_requested_at_ms >= excluded.started_at_ms
                            THEN cluster_nodes.drain_requested_at_ms END
                    """, arguments: [node.nodeID, node.advertiseURL, node.startedAt.milliseconds, node.lastBeatAt.milliseconds])
            try db.execute(
                sql: "DELETE FROM cluster_nodes WHERE last_beat_at_ms < ? AND node_id <> ?", arguments: [forgetBefore.milliseconds, node.nodeID])
            return try Self.clusterNodes(db)
        }
    }

    public func removeNode(_ nodeID: String) async throws(RepositoryError) {
        try await write { db in try db.execute(sql: "DELETE FROM cluster_nodes WHERE node_id = ?", arguments: [nodeID]) }
    }

    public func setDrainRequested(_ requested: Bool, for nodeID: String, at now: Date) async throws(RepositoryError) -> Bool {
        try await write { db in
            try db.execute(
                sql: "UPDATE cluster_nodes SET drain_requested_at_ms = ? WHERE node_id = ?", arguments: [requested ? now.milliseconds : nil, nodeID])
            return db.changesCount == 1
        }
    }

    public func clusterNodes() async throws(RepositoryError) -> [ClusterNode] {
        try await read { db in try Self.clusterNodes(db) }
    }

    private static func clusterNodes(_ db: Database) throws -> [ClusterNode] {
        try Row.fetchAll(db, sql: "SELECT node_id, advertise_url, started_at_ms, last_beat_at_ms, drain_requested_at_ms IS NOT NULL FROM cluster_nodes ORDER BY node_id"
        ).map { row in
            ClusterNode(
                nodeID: row[0], advertiseURL: row[1], startedAt: Date(milliseconds: row[2]), lastBeatAt: Date(milliseconds: row[3]), drainRequested: row[4])
        }
    }
}
