import Foundation
import Logging
import PostgresNIO
import Tenancy

extension PostgresSystemStore {
    public func sealedRecords(of tenant: TenantName, kind: String, keys: [String]) async throws(RepositoryError) -> [String: [UInt8]] {
        guard !keys.isEmpty else { return [:] }
        let wanted = Array(Set(keys))
        let rows = try await run { client, logger in
            let rows = try await client.query(
                """
                SELECT record_key, sealed FROM sealed_records
                WHERE tenant = \(tenant.rawValue) AND kind = \(kind) AND record_key = ANY(\(wanted)::text[])
                """, logger: logger)
            return try await collectAll(rows.decode((String, ByteBuffer).self))
        }
        var found: [String: [UInt8]] = [:]
        for (key, buffer) in rows { found[key] = Array(buffer.readableBytesView) }
        return found
    }

    public func applySealedRecords(_ batch: [SealedRecordWrite]) async throws(RepositoryError) -> Set<Int> {
        let outcomes = try await commit(batch.map { DurableWrite(records: $0) })
        return Set(outcomes.indices.filter { outcomes[$0] == nil })
    }

    /// Writes (or deletes) the write's records in the open transaction.
    static func apply(_ write: SealedRecordWrite, now: Int64, on connection: PostgresConnection, logger: Logger) async throws {
        let tenant = write.tenant.rawValue
        for change in write.changes {
            if let sealed = change.sealed {
                _ = try await connection.query(
                    """
                    INSERT INTO sealed_records (tenant, kind, record_key, sealed, updated_at_ms)
                    VALUES (\(tenant), \(change.kind), \(change.key), \(ByteBuffer(bytes: sealed)), \(now))
                    ON CONFLICT (tenant, kind, record_key) DO UPDATE SET sealed = EXCLUDED.sealed, updated_at_ms = EXCLUDED.updated_at_ms
                    """, logger: logger)
            } else {
                _ = try await connection.query(
                    "DELETE FROM sealed_records WHERE tenant = \(tenant) AND kind = \(change.kind) AND record_key = \(change.key)",
                    logger: logger)
            }
        }
    }

    public func sealedRecordKeys(of tenant: TenantName, kind: String) async throws(RepositoryError) -> [String] {
        try await run { client, logger in
            let rows = try await client.query(
                "SELECT record_key FROM sealed_records WHERE tenant = \(tenant.rawValue) AND kind = \(kind) ORDER BY record_key", logger: logger)
            return try await collectAll(rows.decode(String.self))
        }
    }

    /// The indices of the writes whose fence does not hold. The lease rows of every fenced tenant are read in one
    /// statement in tenant order and locked `FOR KEY SHARE` until the transaction ends: a takeover (`FOR UPDATE`)
    /// waits for this write; the heartbeat's renewal (`FOR NO KEY UPDATE`) does not.
    static func fencedOut(_ batch: [SealedRecordWrite?], on connection: PostgresConnection, logger: Logger) async throws -> Set<Int> {
        let fenced = batch.enumerated().compactMap { index, write in write.flatMap { $0.fence != nil && !$0.changes.isEmpty ? (index, $0) : nil } }
        guard !fenced.isEmpty else { return [] }
        let tenants = Array(Set(fenced.map(\.1.tenant.rawValue))).sorted()
        let rows = try await connection.query(
            """
            SELECT tenant, node_id, generation, expires_at_ms, last_beat_at_ms, state, last_error FROM session_leases
            WHERE tenant = ANY(\(tenants)::text[]) ORDER BY tenant FOR KEY SHARE
            """, logger: logger)
        let leases = Dictionary(try await Self.leases(rows).map { ($0.tenant.rawValue, $0) }, uniquingKeysWith: { $1 })
        return Set(fenced.filter { !$0.1.fence!.holds(over: leases[$0.1.tenant.rawValue]) }.map(\.0))
    }
}
