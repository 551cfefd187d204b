import Foundation
import GRDB
import Tenancy

extension SQLiteSystemStore {
    public func sealedRecords(of tenant: TenantName, kind: String, keys: [String]) async throws(RepositoryError) -> [String: [UInt8]] {
        guard !keys.isEmpty else { return [:] }
        return try await read { db in
            var found: [String: [UInt8]] = [:]
            let statement = try db.cachedStatement(sql: "SELECT sealed FROM sealed_records WHERE tenant = ? AND kind = ? AND record_key = ?")
            for key in Set(keys) {
                if let sealed = try Data.fetchOne(statement, arguments: [tenant.rawValue, kind, key]) { found[key] = Array(sealed) }
            }
            return found
        }
    }

    public func applySealedRecords(_ batch: [SealedRecordWrite]) async throws(RepositoryError) -> Set<Int> {
        let outcomes = try await commit(batch.map { DurableWrite(records: $0) })
        return Set(outcomes.indices.filter { outcomes[$0] == nil })
    }

    /// True when the write has no fence or its fence holds over the tenant's lease row.
    static func fenceHolds(_ write: SealedRecordWrite, _ db: Database) throws -> Bool {
        guard let fence = write.fence else { return true }
        let lease = try Row.fetchOne(
            db.cachedStatement(
                sql: "SELECT tenant, node_id, generation, expires_at_ms, last_beat_at_ms, state, last_error FROM session_leases WHERE tenant = ?"),
            arguments: [write.tenant.rawValue]
        ).map { row in try SQLiteSystemStore.lease(from: row) }
        return fence.holds(over: lease)
    }

    /// Writes (or deletes) the write's records in the open transaction.
    static func apply(_ write: SealedRecordWrite, now: Int64, _ db: Database) throws {
        let tenant = write.tenant.rawValue
        for change in write.changes {
            if let sealed = change.sealed {
                try db.cachedStatement(
                    sql: """
                        INSERT INTO sealed_records (tenant, kind, record_key, sealed, updated_at_ms) VALUES (?, ?, ?, ?, ?)
                        ON CONFLICT (tenant, kind, record_key) DO UPDATE SET sealed = excluded.sealed, updated_at_ms = excluded.updated_at_ms
                        """
                ).execute(arguments: [tenant, change.kind, change.key, Data(sealed), now])
            } else {
                try db.cachedStatement(sql: "DELETE FROM sealed_records WHERE tenant = ? AND kind = ? AND record_key = ?")
                    .execute(arguments: [tenant, change.kind, change.key])
            }
        }
    }

    public func sealedRecordKeys(of tenant: TenantName, kind: String) async throws(RepositoryError) -> [String] {
        try await read { db in
            try String.fetchAll(
                db, sql: "SELECT record_key FROM sealed_records WHERE tenant = ? AND kind = ? ORDER BY record_key", arguments: [tenant.rawValue, kind])
        }
    }
}
