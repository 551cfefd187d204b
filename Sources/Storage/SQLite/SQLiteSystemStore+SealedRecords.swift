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
            for write in batch where !write.changes.isEmpty {
                if let fence = write.fence { try Self.check(fence, of: write.tenant, in: db) }
            }
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

    public func sealedRecordKeys(of tenant: TenantName, kind: String) async throws(RepositoryError) -> [String] {
        try await read { db in
            try String.fetchAll(
                db, sql: "SELECT record_key FROM sealed_records WHERE tenant = ? AND kind = ? ORDER BY record_key", arguments: [tenant.rawValue, kind])
        }
    }

    /// Throws `.fenced` unless `fence` holds (the write transaction is the only writer, so nothing races the check).
    static func check(_ fence: LeaseFence, of tenant: TenantName, in db: Database) throws {
        switch fence {
        case .holder(let nodeID, let generation):
            let held = try Bool.fetchOne(
                db, sql: "SELECT 1 FROM session_leases WHERE tenant = ? AND node_id = ? AND generation = ? AND expires_at_ms > 0",
                arguments: [tenant.rawValue, nodeID, generation]) ?? false
            guard held else { throw RepositoryError.leaseLost(tenant) }
        case .noOtherLiveHolder(let nodeID, let now):
            let other = try Bool.fetchOne(
                db, sql: "SELECT 1 FROM session_leases WHERE tenant = ? AND node_id <> ? AND expires_at_ms > ?",
                arguments: [tenant.rawValue, nodeID, now.milliseconds]) ?? false
            guard !other else { throw RepositoryError.leaseLost(tenant) }
        }
    }
}
