import Foundation
import GRDB
import Tenancy

extension SQLiteSystemStore {
    public func appendEvents(_ events: [NewTenantEvent]) async throws(RepositoryError) -> [Int64?] {
        try await commit([DurableWrite(events: events)])[0] ?? []
    }

    public func commit(_ batch: [DurableWrite]) async throws(RepositoryError) -> [[Int64?]?] {
        guard batch.contains(where: { !$0.isEmpty }) else { return batch.map { _ in [] } }
        let now = Date().milliseconds
        return try await write { db in
            // The write transaction is the only writer: nothing can take a lease between a fence check and the writes.
            var leftOut: Set<Int> = []
            return try batch.map { write -> [Int64?]? in
                if let chain = write.chain, leftOut.contains(chain) { return nil }
                if let records = write.records, !records.changes.isEmpty {
                    guard try Self.fenceHolds(records, db) else {
                        if let chain = write.chain { leftOut.insert(chain) }
                        return nil
                    }
                    try Self.apply(records, now: now, db)
                }
                return try write.events.map { try Self.append($0, db) }
            }
        }
    }

    /// Appends one event in the open transaction; nil when its dedupe key is taken.
    static func append(_ event: NewTenantEvent, _ db: Database) throws -> Int64? {
        if let key = event.dedupeKey,
            try Bool.fetchOne(
                db.cachedStatement(sql: "SELECT 1 FROM tenant_events WHERE tenant = ? AND dedupe_key = ?"),
                arguments: [event.tenant.rawValue, key]) == true
        {
            return nil
        }
        guard
            let id = try Int64.fetchOne(
                db.cachedStatement(
                    sql: """
                        INSERT INTO tenant_event_sequences (tenant, last_seq) VALUES (?, 1)
                        ON CONFLICT (tenant) DO UPDATE SET last_seq = last_seq + 1 RETURNING last_seq
                        """), arguments: [event.tenant.rawValue])
        else { throw RepositoryError(.unavailable, "no event id returned") }
        try db.cachedStatement(
            sql: "INSERT INTO tenant_events (tenant, seq, type, at_ms, data, dedupe_key) VALUES (?, ?, ?, ?, ?, ?)"
        ).execute(arguments: [event.tenant.rawValue, id, event.type, event.at.milliseconds, event.data, event.dedupeKey])
        return id
    }

    public func events(of tenant: TenantName, after: Int64, limit: Int) async throws(RepositoryError) -> [StoredTenantEvent] {
        try await read { db in
            try Row.fetchAll(
                db.cachedStatement(sql: "SELECT seq, type, at_ms, data FROM tenant_events WHERE tenant = ? AND seq > ? ORDER BY seq LIMIT ?"),
                arguments: [tenant.rawValue, after, max(0, limit)]
            ).map { StoredTenantEvent(id: $0["seq"], type: $0["type"], at: Date(milliseconds: $0["at_ms"]), data: $0["data"]) }
        }
    }

    public func event(of tenant: TenantName, dedupeKey: String) async throws(RepositoryError) -> StoredTenantEvent? {
        try await read { db in
            try Row.fetchOne(
                db.cachedStatement(sql: "SELECT seq, type, at_ms, data FROM tenant_events WHERE tenant = ? AND dedupe_key = ?"),
                arguments: [tenant.rawValue, dedupeKey]
            ).map { StoredTenantEvent(id: $0["seq"], type: $0["type"], at: Date(milliseconds: $0["at_ms"]), data: $0["data"]) }
        }
    }

    public func recentEvents(of tenant: TenantName, types: [String], limit: Int) async throws(RepositoryError) -> [StoredTenantEvent] {
        guard !types.isEmpty else { return [] }
        return try await read { db in
            let marks = Array(repeating: "?", count: types.count).joined(separator: ", ")
            return try Row.fetchAll(
                db.cachedStatement(sql: "SELECT seq, type, at_ms, data FROM tenant_events WHERE tenant = ? AND type IN (\(marks)) ORDER BY seq DESC LIMIT ?"),
                arguments: StatementArguments([tenant.rawValue] + types + [String(max(0, limit))])
            ).map { StoredTenantEvent(id: $0["seq"], type: $0["type"], at: Date(milliseconds: $0["at_ms"]), data: $0["data"]) }.reversed()
        }
    }

    public func trimEvents(olderThan cutoff: Date) async throws(RepositoryError) -> Int {
        try await write { db in
            // Events a webhook has not delivered yet stay, however old: the log is the webhooks' outbox.
            try db.execute(
                sql: """
                    DELETE FROM tenant_events WHERE at_ms < ?
                    AND NOT EXISTS (SELECT 1 FROM webhooks w WHERE w.tenant = tenant_events.tenant AND tenant_events.seq > w.cursor_seq)
                    AND NOT EXISTS (
                        SELECT 1 FROM webhook_parked p WHERE p.tenant = tenant_events.tenant AND p.seq = tenant_events.seq AND p.status = 'queued')
                    """, arguments: [cutoff.milliseconds])
            return db.changesCount
        }
    }
}
