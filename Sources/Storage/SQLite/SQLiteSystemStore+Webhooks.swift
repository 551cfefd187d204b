import Foundation
import GRDB
import Tenancy

extension SQLiteSystemStore {
    public func putWebhook(for tenant: TenantName, url: String, events: [String], sealedSecret: [UInt8]) async throws(RepositoryError) -> Bool {
        try await write { db in
            let name = tenant.rawValue
            let types = events.joined(separator: ",")
            try db.execute(sql: "UPDATE webhooks SET url = ?, events = ?, \(Self.endRest) WHERE tenant = ?", arguments: [url, types, name])
            if db.changesCount > 0 { return false }
            // A new webhook starts after the newest event: it delivers what happens from now on (`redeliver` replays).
            let last = try Int64.fetchOne(db, sql: "SELECT last_seq FROM tenant_event_sequences WHERE tenant = ?", arguments: [name]) ?? 0
            try db.execute(
                sql: "INSERT INTO webhooks (tenant, url, events, sealed_secret, cursor_seq) VALUES (?, ?, ?, ?, ?)",
                arguments: [name, url, types, Data(sealedSecret), last])
            return true
        }
    }

    public func webhook(for tenant: TenantName) async throws(RepositoryError) -> StoredWebhook? {
        try await read { db in try Row.fetchOne(db, sql: "SELECT * FROM webhooks WHERE tenant = ?", arguments: [tenant.rawValue]).map(Self.webhook(from:)) }
    }

    public func deleteWebhook(for tenant: TenantName) async throws(RepositoryError) -> Bool {
        try await write { db in
            try db.execute(sql: "DELETE FROM webhook_parked WHERE tenant = ?", arguments: [tenant.rawValue])
            try db.execute(sql: "DELETE FROM webhooks WHERE tenant = ?", arguments: [tenant.rawValue])
            return db.changesCount > 0
        }
    }

    public func replaceWebhookSecret(for tenant: TenantName, sealedSecret: [UInt8]) async throws(RepositoryError) -> Bool {
        try await write { db in
            try db.execute(sql: "UPDATE webhooks SET sealed_secret = ?, \(Self.endRest) WHERE tenant = ?", arguments: [Data(sealedSecret), tenant.rawValue])
            return db.changesCount > 0
        }
    }

    /// Ends a rest (a release into the future) but not a live claim.
    private static let endRest = "claimed_until_ms = CASE WHEN claimed_by IS NULL THEN 0 ELSE claimed_until_ms END"

    public func dueWebhooks(at now: Date, node: String, limit: Int) async throws(RepositoryError) -> [StoredWebhook] {
        try await read { db in
            try Row.fetchAll(
                db.cachedStatement(
                    sql: """
                        SELECT w.* FROM webhooks w
                        WHERE (w.claimed_until_ms <= ?1 OR w.claimed_by = ?3)
                          AND NOT EXISTS (SELECT 1 FROM session_leases l WHERE l.tenant = w.tenant AND l.node_id <> ?3 AND l.expires_at_ms > ?1)
                          AND ((w.next_attempt_at_ms <= ?1
                               AND EXISTS (SELECT 1 FROM tenant_events e WHERE e.tenant = w.tenant AND e.seq > w.cursor_seq))
                           OR EXISTS (SELECT 1 FROM webhook_parked p
                                      WHERE p.tenant = w.tenant AND p.status = 'queued' AND p.next_attempt_at_ms <= ?1))
                        ORDER BY w.claimed_until_ms
                        LIMIT ?2
                        """), arguments: [now.milliseconds, limit, node]
            ).map(Self.webhook(from:))
        }
    }

    public func claimWebhook(for tenant: TenantName, node: String, until: Date, now: Date) async throws(RepositoryError) -> StoredWebhook? {
        try await write { db in
            try db.execute(
                sql: "UPDATE webhooks SET claimed_by = ?, claimed_until_ms = ? WHERE tenant = ? AND (claimed_until_ms <= ? OR claimed_by = ?)",
                arguments: [node, until.milliseconds, tenant.rawValue, now.milliseconds, node])
            guard db.changesCount > 0 else { return nil }
            return try Row.fetchOne(db, sql: "SELECT * FROM webhooks WHERE tenant = ?", arguments: [tenant.rawValue]).map(Self.webhook(from:))
        }
    }

    public func releaseWebhook(for tenant: TenantName, node: String, until: Date) async throws(RepositoryError) {
        try await write { db in
            try db.execute(
                sql: "UPDATE webhooks SET claimed_by = NULL, claimed_until_ms = ? WHERE tenant = ? AND claimed_by = ?",
                arguments: [until.milliseconds, tenant.rawValue, node])
        }
    }

    public func advanceWebhook(for tenant: TenantName, from expected: Int64, to: Int64) async throws(RepositoryError) -> Bool {
        try await write { db in
            try db.execute(
                sql: """
                    UPDATE webhooks SET cursor_seq = ?, attempts = 0, first_failure_at_ms = NULL, next_attempt_at_ms = 0, last_error = NULL
                    WHERE tenant = ? AND cursor_seq = ?
                    """, arguments: [to, tenant.rawValue, expected])
            return db.changesCount > 0
        }
    }

    public func recordWebhookFailure(
        for tenant: TenantName, at expected: Int64, attempts: Int, firstFailureAt: Date, nextAttemptAt: Date, error: String
    ) async throws(RepositoryError) {
        try await write { db in
            try db.execute(
                sql: """
                    UPDATE webhooks SET attempts = ?, first_failure_at_ms = ?, next_attempt_at_ms = ?, last_error = ?
                    WHERE tenant = ? AND cursor_seq = ?
                    """,
                arguments: [attempts, firstFailureAt.milliseconds, nextAttemptAt.milliseconds, error, tenant.rawValue, expected])
        }
    }

    public func deadLetterWebhookHead(
        for tenant: TenantName, from expected: Int64, eventID: Int64, attempts: Int, firstFailureAt: Date, error: String, now: Date
    ) async throws(RepositoryError) -> Bool {
        try await write { db in
            try db.execute(
                sql: """
                    UPDATE webhooks SET cursor_seq = ?, attempts = 0, first_failure_at_ms = NULL, next_attempt_at_ms = 0, last_error = NULL
                    WHERE tenant = ? AND cursor_seq = ?
                    """, arguments: [eventID, tenant.rawValue, expected])
            guard db.changesCount > 0 else { return false }
            try db.execute(
                sql: """
                    INSERT INTO webhook_parked (tenant, seq, status, attempts, first_failure_at_ms, next_attempt_at_ms, last_error, parked_at_ms)
                    VALUES (?, ?, 'dead', ?, ?, 0, ?, ?)
                    ON CONFLICT (tenant, seq) DO UPDATE SET status = 'dead', attempts = excluded.attempts, last_error = excluded.last_error,
                        parked_at_ms = excluded.parked_at_ms
                    """, arguments: [tenant.rawValue, eventID, attempts, firstFailureAt.milliseconds, error, now.milliseconds])
            return true
        }
    }

    public func parkedWebhookDeliveries(for tenant: TenantName, status: String, dueBy: Date?, limit: Int) async throws(RepositoryError)
        -> [ParkedWebhookDelivery]
    {
        try await read { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM webhook_parked WHERE tenant = ? AND status = ? AND next_attempt_at_ms <= ? ORDER BY seq LIMIT ?",
                arguments: [tenant.rawValue, status, dueBy?.milliseconds ?? Int64.max, limit]
            ).map { row in
                ParkedWebhookDelivery(
                    tenant: tenant, eventID: row["seq"], status: row["status"], attempts: row["attempts"],
                    firstFailureAt: (row["first_failure_at_ms"] as Int64?).map(Date.init(milliseconds:)),
                    nextAttemptAt: Date(milliseconds: row["next_attempt_at_ms"]), lastError: row["last_error"],
                    parkedAt: Date(milliseconds: row["parked_at_ms"]))
            }
        }
    }

    public func updateParkedWebhookDelivery(_ delivery: ParkedWebhookDelivery, delivered: Bool) async throws(RepositoryError) {
        try await write { db in
            if delivered {
                try db.execute(sql: "DELETE FROM webhook_parked WHERE tenant = ? AND seq = ?", arguments: [delivery.tenant.rawValue, delivery.eventID])
                return
            }
            try db.execute(
                sql: """
                    UPDATE webhook_parked SET status = ?, attempts = ?, first_failure_at_ms = ?, next_attempt_at_ms = ?, last_error = ?, parked_at_ms = ?
                    WHERE tenant = ? AND seq = ?
                    """,
                arguments: [
                    delivery.status, delivery.attempts, delivery.firstFailureAt?.milliseconds, delivery.nextAttemptAt.milliseconds,
                    delivery.lastError, delivery.parkedAt.milliseconds, delivery.tenant.rawValue, delivery.eventID,
                ])
        }
    }

    public func requeueWebhookDelivery(for tenant: TenantName, eventID: Int64, now: Date) async throws(RepositoryError) -> Bool {
        try await write { db in
            try db.execute(
                sql: """
                    UPDATE webhook_parked SET status = 'queued', attempts = 0, first_failure_at_ms = NULL, next_attempt_at_ms = ?, parked_at_ms = ?
                    WHERE tenant = ? AND seq = ? AND status = 'dead'
                    """, arguments: [now.milliseconds, now.milliseconds, tenant.rawValue, eventID])
            guard db.changesCount > 0 else { return false }
            try db.execute(sql: "UPDATE webhooks SET \(Self.endRest) WHERE tenant = ?", arguments: [tenant.rawValue])
            return true
        }
    }

    public func rewindWebhook(for tenant: TenantName, after: Int64) async throws(RepositoryError) -> Bool {
        try await write { db in
            try db.execute(
                sql: """
                    UPDATE webhooks SET cursor_seq = MIN(?, COALESCE((SELECT last_seq FROM tenant_event_sequences WHERE tenant = ?), 0)),
                        attempts = 0, first_failure_at_ms = NULL, next_attempt_at_ms = 0, last_error = NULL, \(Self.endRest)
                    WHERE tenant = ?
                    """, arguments: [max(0, after), tenant.rawValue, tenant.rawValue])
            return db.changesCount > 0
        }
    }

    public func webhookBacklog() async throws(RepositoryError) -> (depth: Int, oldest: Date?) {
        try await read { db in
            let row = try Row.fetchOne(
                db,
                sql: """
                    SELECT COUNT(*) AS depth, MIN(e.at_ms) AS oldest FROM webhooks w
                    JOIN tenant_events e ON e.tenant = w.tenant AND e.seq > w.cursor_seq
                    """)
            return (row?["depth"] ?? 0, (row?["oldest"] as Int64?).map(Date.init(milliseconds:)))
        }
    }

    public func webhookHealth() async throws(RepositoryError) -> [WebhookHealth] {
        try await read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT w.tenant, w.url, w.attempts, w.first_failure_at_ms, w.last_error,
                        (SELECT COUNT(*) FROM tenant_events e WHERE e.tenant = w.tenant AND e.seq > w.cursor_seq) AS pending,
                        (SELECT COUNT(*) FROM webhook_parked p WHERE p.tenant = w.tenant AND p.status = 'dead') AS dead
                    FROM webhooks w ORDER BY w.tenant
                    """
            ).map { row in
                guard let tenant = try? TenantName(row["tenant"] as String) else { throw RepositoryError(.corrupt, "invalid tenant name in webhooks") }
                return WebhookHealth(
                    tenant: tenant, url: row["url"], pending: row["pending"], dead: row["dead"], attempts: row["attempts"],
                    firstFailureAt: (row["first_failure_at_ms"] as Int64?).map(Date.init(milliseconds:)), lastError: row["last_error"])
            }
        }
    }

    private static func webhook(from row: Row) throws -> StoredWebhook {
        guard let tenant = try? TenantName(row["tenant"] as String) else { throw RepositoryError(.corrupt, "invalid tenant name in webhooks") }
        let events: String = row["events"]
        return StoredWebhook(
            tenant: tenant, url: row["url"], events: events.split(separator: ",").map(String.init), sealedSecret: Array(row["sealed_secret"] as Data),
            cursor: row["cursor_seq"], attempts: row["attempts"], firstFailureAt: (row["first_failure_at_ms"] as Int64?).map(Date.init(milliseconds:)),
            nextAttemptAt: Date(milliseconds: row["next_attempt_at_ms"]), lastError: row["last_error"])
    }
}
