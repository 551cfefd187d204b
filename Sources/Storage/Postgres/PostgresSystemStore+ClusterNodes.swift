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
                            last_beat_at_ms = excluded.last_beat_at_ms,
                            drain_requested_at_ms = CASE WHEN cluster_nodes.started_at_ms = excluded.started_at_ms
                                OR cluster_nodes.drain_requested_at_ms >= excluded.started_at_ms
                                THEN cluster_nodes.drain_requested_at_ms END
                        RETURNING node_id, advertise_url, started_at_ms, last_beat_at_ms, drain_requested_at_ms IS NOT NULL
                    ), forgotten AS (
                        DELETE FROM cluster_nodes WHERE last_beat_at_ms < \(cutoff) AND node_id <> \(id)
                    )
                    SELECT * FROM upserted
                    UNION ALL
                    SELECT node_id, advertise_url, started_at_ms, last_beat_at_ms, drain_requested_at_ms IS NOT NULL FROM cluster_nodes
                    WHERE node_id <> \(id) AND last_beat_at_ms >= \(cutoff)
                    """, logger: logger
                ).decode((String, String?, Int64, Int64, Bool).self))
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
                    """
                    SELECT node_id, advertise_url, started_at_ms, last_beat_at_ms, drain_requested_at_ms IS NOT NULL
                    FROM cluster_nodes ORDER BY node_id
                    """, logger: logger
                ).decode((String, String?, Int64, Int64, Bool).self))
        }
        return Self.clusterNodes(rows)
    }

    public func setDrainRequested(_ requested: Bool, for nodeID: String, at now: Date) async throws(RepositoryError) -> Bool {
        let at: Int64? = requested ? now.milliseconds : nil
        return try await run { client, logger in
            try await client.query(
                "UPDATE cluster_nodes SET drain_requested_at_ms = \(at) WHERE node_id = \(nodeID) RETURNING node_id", logger: logger
            ).collect().count == 1
        }
    }

    private static func clusterNodes(_ rows: [(String, String?, Int64, Int64, Bool)]) -> [ClusterNode] {
        rows.map {
            ClusterNode(nodeID: $0.0, advertiseURL: $0.1, startedAt: Date(milliseconds: $0.2), lastBeatAt: Date(milliseconds: $0.3), drainRequested: $0.4)
        }
    }
}
