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

    public func writeSealedRecords(_ batch: [SealedRecordWrite]) async throws(RepositoryError) {
        guard batch.contains(where: { !$0.changes.isEmpty }) else { return }
        let now = Date().milliseconds
        try await transaction { connection, logger in
            for write in batch where !write.changes.isEmpty {
                if let fence = write.fence { try await Self.check(fence, of: write.tenant, on: connection, logger: logger) }
            }
            for write in batch {
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
        }
    }

    public func sealedRecordKeys(of tenant: TenantName, kind: String) async throws(RepositoryError) -> [String] {
        try await run { client, logger in
            let rows = try await client.query(
                "SELECT record_key FROM sealed_records WHERE tenant = \(tenant.rawValue) AND kind = \(kind) ORDER BY record_key", logger: logger)
            return try await collectAll(rows.decode(String.self))
        }
    }

    /// Throws `.fenced` unless `fence` holds; the lease row read stays locked until the transaction ends, so a
    /// takeover waits for this write instead of racing it.
    static func check(_ fence: LeaseFence, of tenant: TenantName, on connection: PostgresConnection, logger: Logger) async throws {
        switch fence {
        case .holder(let nodeID, let generation):
            let rows = try await connection.query(
                """
                SELECT 1 FROM session_leases
                WHERE tenant = \(tenant.rawValue) AND node_id = \(nodeID) AND generation = \(generation) AND expires_at_ms > 0
                FOR SHARE
                """, logger: logger)
            guard try await rows.collect().count == 1 else { throw RepositoryError.leaseLost(tenant) }
        case .noOtherLiveHolder(let nodeID, let now):
            let rows = try await connection.query(
                """
                SELECT 1 FROM session_leases
                WHERE tenant = \(tenant.rawValue) AND node_id <> \(nodeID) AND expires_at_ms > \(now.milliseconds)
                FOR SHARE
                """, logger: logger)
            guard try await rows.collect().isEmpty else { throw RepositoryError.leaseLost(tenant) }
        }
    }
}
