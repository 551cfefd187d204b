import Foundation
import Logging
import PostgresNIO
import Tenancy

extension PostgresSystemStore {
    public func appendEvents(_ events: [NewTenantEvent]) async throws(RepositoryError) -> [Int64?] {
        try await commit([DurableWrite(events: events)])[0] ?? []
    }

    public func commit(_ batch: [DurableWrite]) async throws(RepositoryError) -> [[Int64?]?] {
        guard batch.contains(where: { !$0.isEmpty }) else { return batch.map { _ in [] } }
        let now = Date().milliseconds
        return try await transaction { connection, logger in
            var fenced = try await Self.fencedOut(batch.map(\.records), on: connection, logger: logger)
            // A write built on a fenced one of its chain is left out too.
            var leftOut: Set<Int> = []
            for (index, write) in batch.enumerated() {
                guard let chain = write.chain else { continue }
                if leftOut.contains(chain) { fenced.insert(index) } else if fenced.contains(index) { leftOut.insert(chain) }
            }
            var ids: [[Int64?]?] = batch.indices.map { fenced.contains($0) ? nil : Array(repeating: nil, count: batch[$0].events.count) }
            // Tenants in name order (each tenant's events keep theirs), so two batches never lock sequence rows crosswise.
            let order = batch.indices.filter { !fenced.contains($0) }.flatMap { write in batch[write].events.indices.map { (write, $0) } }
                .sorted { (batch[$0.0].events[$0.1].tenant.rawValue, $0.0, $0.1) < (batch[$1.0].events[$1.1].tenant.rawValue, $1.0, $1.1) }
            for (write, index) in order {
                ids[write]?[index] = try await Self.append(batch[write].events[index], on: connection, logger: logger)
            }
            for (index, write) in batch.enumerated() where !fenced.contains(index) {
                if let records = write.records { try await Self.apply(records, now: now, on: connection, logger: logger) }
            }
            return ids
        }
    }

    /// Appends one event in the open transaction; nil when its dedupe key is taken.
    static func append(_ event: NewTenantEvent, on connection: PostgresConnection, logger: Logger) async throws -> Int64? {
        // Lock the tenant's sequence row first: a concurrent append of the same dedupe key waits here,
        // then sees the first one's row instead of failing on the unique index.
        _ = try await connection.query(
            """
            INSERT INTO tenant_event_sequences (tenant, last_seq) VALUES (\(event.tenant.rawValue), 0)
            ON CONFLICT (tenant) DO UPDATE SET last_seq = tenant_event_sequences.last_seq
            """, logger: logger)
        if let key = event.dedupeKey {
            let seen = try await connection.query(
                "SELECT 1 FROM tenant_events WHERE tenant = \(event.tenant.rawValue) AND dedupe_key = \(key)", logger: logger)
            if try await collectAll(seen.decode(Int32.self)).isEmpty == false { return nil }
        }
        let numbered = try await connection.query(
            "UPDATE tenant_event_sequences SET last_seq = last_seq + 1 WHERE tenant = \(event.tenant.rawValue) RETURNING last_seq",
            logger: logger)
        guard let id = try await collectAll(numbered.decode(Int64.self)).first else {
            throw RepositoryError(.unavailable, "no event id returned")
        }
        _ = try await connection.query(
            """
            INSERT INTO tenant_events (tenant, seq, type, at_ms, data, dedupe_key)
            VALUES (\(event.tenant.rawValue), \(id), \(event.type), \(event.at.milliseconds), \(event.data), \(event.dedupeKey))
            """, logger: logger)
        return id
    }

    public func events(of tenant: TenantName, after: Int64, limit: Int) async throws(RepositoryError) -> [StoredTenantEvent] {
        let limit = Int64(max(0, limit))
        let rows = try await run { client, logger in
            let rows = try await client.query(
                "SELECT seq, type, at_ms, data FROM tenant_events WHERE tenant = \(tenant.rawValue) AND seq > \(after) ORDER BY seq LIMIT \(limit)",
                logger: logger)
            return try await collectAll(rows.decode((Int64, String, Int64, String).self))
        }
        return rows.map { StoredTenantEvent(id: $0.0, type: $0.1, at: Date(milliseconds: $0.2), data: $0.3) }
    }

    public func event(of tenant: TenantName, dedupeKey: String) async throws(RepositoryError) -> StoredTenantEvent? {
        let rows = try await run { client, logger in
            let rows = try await client.query(
                "SELECT seq, type, at_ms, data FROM tenant_events WHERE tenant = \(tenant.rawValue) AND dedupe_key = \(dedupeKey)", logger: logger)
            return try await collectAll(rows.decode((Int64, String, Int64, String).self))
        }
        return rows.first.map { StoredTenantEvent(id: $0.0, type: $0.1, at: Date(milliseconds: $0.2), data: $0.3) }
    }

    public func recentEvents(of tenant: TenantName, types: [String], limit: Int) async throws(RepositoryError) -> [StoredTenantEvent] {
        let limit = Int64(max(0, limit))
        let rows = try await run { client, logger in
            let rows = try await client.query(
                "SELECT seq, type, at_ms, data FROM tenant_events WHERE tenant = \(tenant.rawValue) AND type = ANY(\(types)) ORDER BY seq DESC LIMIT \(limit)",
                logger: logger)
            return try await collectAll(rows.decode((Int64, String, Int64, String).self))
        }
        return rows.reversed().map { StoredTenantEvent(id: $0.0, type: $0.1, at: Date(milliseconds: $0.2), data: $0.3) }
    }

    public func trimEvents(olderThan cutoff: Date) async throws(RepositoryError) -> Int {
        try await run { client, logger in
            // Events a webhook has not delivered yet stay, however old: the log is the webhooks' outbox.
            let rows = try await client.query(
                """
                DELETE FROM tenant_events WHERE at_ms < \(cutoff.milliseconds)
                AND NOT EXISTS (SELECT 1 FROM webhooks w WHERE w.tenant = tenant_events.tenant AND tenant_events.seq > w.cursor_seq)
                AND NOT EXISTS (
                    SELECT 1 FROM webhook_parked p WHERE p.tenant = tenant_events.tenant AND p.seq = tenant_events.seq AND p.status = 'queued')
                RETURNING seq
                """, logger: logger)
            return try await collectAll(rows.decode(Int64.self)).count
        }
    }
}
