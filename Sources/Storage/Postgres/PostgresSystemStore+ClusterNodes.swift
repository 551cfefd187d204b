import Foundation
import PostgresNIO
import Tenancy

extension PostgresSystemStore {
    public func beatNode(_ node: ClusterNode, forgetBefore: Date) async throws(RepositoryError) -> [ClusterNode] {
        let (id, url, started, beat, cutoff) = (node.nodeID, node.advertiseURL, node.startedAt.milliseconds, node.lastBeatAt.milliseconds, forgetBefore.milliseconds)
        // One statement: the CTEs see the table as it was, so the other rows come from it and this node's from the upsert.
        let rows = try await run { client, logger in
            try await collectAll(
                try await client.query(
                    """
                    WITH upserted AS (
                        INSERT INTO cluster_nodes (node_id, advertise_url, started_at_ms, last_beat_at_ms) VALUES (\(id), \(url), \(started), \(beat))
                        ON CONFLICT (node_id) DO UPDATE SET advertise_url = excluded.advertise_url, started_at_ms = excluded.started_at_ms,
                            last_beat_at_ms = excluded.last_beat_at_ms
                        RETURNING node_id, advertise_url, started_at_ms, last_beat_at_ms
                    ), forgotten AS (
                        DELETE FROM cluster_nodes WHERE last_beat_at_ms < \(cutoff) AND node_id <> \(id)
                    )
                    SELECT node_id, advertise_url, started_at_ms, last_beat_at_ms FROM upserted
                    UNION ALL
                    SELECT node_id, advertise_url, started_at_ms, last_beat_at_ms FROM cluster_nodes
                    WHERE node_id <> \(id) AND last_beat_at_ms >= \(cutoff)
                    """, logger: logger
                ).decode((String, String?, Int64, Int64).self))
        }
        return Self.clusterNodes(rows).sorted { $0.nodeID < $1.nodeID }
    }

    public func removeNode(_ nodeID: String) async throws(RepositoryError) {
        try await run { client, logger in try await client.query("DELETE FROM cluster_nodes WHERE node_id = \(nodeID)", logger: logger) }
    }

    public func clusterNodes() async throws(RepositoryError) -> [ClusterNode] {
        let rows = try await run { client, logger in
            try await collectAll(
                try await client.query(
                    "SELECT node_id, advertise_url, started_at_ms, last_beat_at_ms FROM cluster_nodes ORDER BY node_id", logger: logger
                ).decode((String, String?, Int64, Int64).self))
        }
        return Self.clusterNodes(rows)
    }

    private static func clusterNodes(_ rows: [(String, String?, Int64, Int64)]) -> [ClusterNode] {
        rows.map { ClusterNode(nodeID: $0.0, advertiseURL: $0.1, startedAt: Date(milliseconds: $0.2), lastBeatAt: Date(milliseconds: $0.3)) }
    }
}
