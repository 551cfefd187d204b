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
        guard batch.contains(where: { !$0.changes.isEmpty }) else { return [] }
        let now = Date().milliseconds
        return try await write { db in
            // The write transaction is the only writer: nothing can take a lease between this check and the writes.
            var fenced: Set<Int> = []
            for (index, write) in batch.enumerated() where !write.changes.isEmpty {
                guard let fence = write.fence else { continue }
                let lease = try Row.fetchOne(
                    db, sql: "SELECT tenant, node_id, generation, expires_at_ms, last_beat_at_ms, state, last_error FROM session_leases WHERE tenant = ?",
                    arguments: [write.tenant.rawValue]
                ).map { row in try SQLiteSystemStore.lease(from: row) }
                if !fence.holds(over: lease) { fenced.insert(index) }
            }
            for (index, write) in batch.enumerated() where !fenced.contains(index) {
                let tenant = write.tenant.rawValue
                for change in write.changes {
                    if let sealed = change.sealed {
                        try db.execute(
                            sql: """
                                INSERT INTO sealed_records (tenant, kind, record_key, sealed, updated_at_ms) VALUES (?, ?, ?, ?, ?)
                                ON CONFLICT (tenant, kind, record_key) DO UPDATE SET sealed = excluded.sealed, updated_at_ms = excluded.updated_at_ms
                                """, arguments: [tenant, change.kind, change.key, Data(sealed), now])
                    } else {
                        try db.execute(
                            sql: "DELETE FROM sealed_records WHERE tenant = ? AND kind = ? AND record_key = ?", arguments: [tenant, change.kind, change.key])
                    }
                }
            }
            return fenced
        }
    }

    public func sealedRecordKeys(of tenant: TenantName, kind: String) async throws(RepositoryError) -> [String] {
        try await read { db in
            try String.fetchAll(
                db, sql: "SELECT record_key FROM sealed_records WHERE tenant = ? AND kind = ? ORDER BY record_key", arguments: [tenant.rawValue, kind])
        }
    }
}
