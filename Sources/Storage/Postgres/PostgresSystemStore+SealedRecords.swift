import Foundation
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
}
