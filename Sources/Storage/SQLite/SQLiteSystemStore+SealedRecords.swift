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

    public func writeSealedRecords(_ batch: [SealedRecordWrite]) async throws(RepositoryError) {
        guard batch.contains(where: { !$0.changes.isEmpty }) else { return }
        let now = Date().milliseconds
        try await write { db in
            for write in batch {
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
        }
    }
}
