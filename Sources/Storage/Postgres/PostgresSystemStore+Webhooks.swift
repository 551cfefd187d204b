import Foundation
import PostgresNIO
import Tenancy

extension PostgresSystemStore {
    private typealias WebhookRow = (String, String, String, ByteBuffer, Int64, Int32, Int64?, Int64, String?)
    private static let webhookColumns =
        "tenant, url, events, sealed_secret, cursor_seq, attempts, first_failure_at_ms, next_attempt_at_ms, last_error"

    public func putWebhook(for tenant: TenantName, url: String, events: [String], sealedSecret: [UInt8]) async throws(RepositoryError) -> Bool {
        let name = tenant.rawValue
        let types = events.joined(separator: ",")
        let secret = ByteBuffer(bytes: sealedSecret)
        // One statement, so two first `PUT`s at once both succeed (one creates, the other changes what it created).
        // A new webhook starts after the newest event: it delivers what happens from now on (`redeliver` replays).
        let rows = try await run { client, logger in
            try await collectAll(
                try await client.query(
                    """
                    INSERT INTO webhooks (tenant, url, events, sealed_secret, cursor_seq)
                    VALUES (\(name), \(url), \(types), \(secret),
                            COALESCE((SELECT last_seq FROM tenant_event_sequences WHERE tenant = \(name)), 0))
                    ON CONFLICT (tenant) DO UPDATE SET url = excluded.url, events = excluded.events,
                        claimed_until_ms = CASE WHEN webhooks.claimed_by IS NULL THEN 0 ELSE webhooks.claimed_until_ms END
                    RETURNING (xmax = 0)
                    """, logger: logger
                ).decode(Bool.self))
        }
        return rows.first ?? false
    }

    public func webhook(for tenant: TenantName) async throws(RepositoryError) -> StoredWebhook? {
        try await webhooks(PostgresQuery(unsafeSQL: "SELECT \(Self.webhookColumns) FROM webhooks WHERE tenant = $1", binds: binds(tenant.rawValue))).first
    }

    public func deleteWebhook(for tenant: TenantName) async throws(RepositoryError) -> Bool {
        try await transaction { connection, logger in
            try await connection.query("DELETE FROM webhook_parked WHERE tenant = \(tenant.rawValue)", logger: logger)
            return try await !connection.query("DELETE FROM webhooks WHERE tenant = \(tenant.rawValue) RETURNING tenant", logger: logger).collect().isEmpty
        }
    }

    public func replaceWebhookSecret(for tenant: TenantName, sealedSecret: [UInt8]) async throws(RepositoryError) -> Bool {
        let secret = ByteBuffer(bytes: sealedSecret)
        return try await run { client, logger in
            try await !client.query(
                "UPDATE webhooks SET sealed_secret = \(secret), claimed_until_ms = CASE WHEN claimed_by IS NULL THEN 0 ELSE claimed_until_ms END WHERE tenant = \(tenant.rawValue) RETURNING tenant",
                logger: logger
            ).collect().isEmpty
        }
    }

    public func dueWebhooks(at now: Date, node: String, limit: Int) async throws(RepositoryError) -> [StoredWebhook] {
        var query = PostgresQuery(
            unsafeSQL: """
                SELECT \(Self.webhookColumns.split(separator: ",").map { "w." + $0.trimmingCharacters(in: .whitespaces) }.joined(separator: ", "))
                FROM webhooks w
                WHERE (w.claimed_until_ms <= $1 OR w.claimed_by = $3)
                  AND NOT EXISTS (SELECT 1 FROM session_leases l WHERE l.tenant = w.tenant AND l.node_id <> $3 AND l.expires_at_ms > $1)
                  AND (
                      (w.next_attempt_at_ms <= $1 AND EXISTS (SELECT 1 FROM tenant_events e WHERE e.tenant = w.tenant AND e.seq > w.cursor_seq))
                   OR EXISTS (SELECT 1 FROM webhook_parked p WHERE p.tenant = w.tenant AND p.status = 'queued' AND p.next_attempt_at_ms <= $1))
                ORDER BY w.claimed_until_ms
                LIMIT $2
                """)
        query.binds.append(now.milliseconds)
        query.binds.append(Int64(limit))
        query.binds.append(node)
        return try await webhooks(query)
    }

    public func claimWebhook(for tenant: TenantName, node: String, until: Date, now: Date) async throws(RepositoryError) -> StoredWebhook? {
        var query = PostgresQuery(
            unsafeSQL: """
                UPDATE webhooks SET claimed_by = $1, claimed_until_ms = $2
                WHERE tenant = $3 AND (claimed_until_ms <= $4 OR claimed_by = $1) RETURNING \(Self.webhookColumns)
                """)
        query.binds.append(node)
        query.binds.append(until.milliseconds)
        query.binds.append(tenant.rawValue)
        query.binds.append(now.milliseconds)
        return try await webhooks(query).first
    }

    public func releaseWebhook(for tenant: TenantName, node: String, until: Date) async throws(RepositoryError) {
        try await run { client, logger in
            try await client.query(
                "UPDATE webhooks SET claimed_by = NULL, claimed_until_ms = \(until.milliseconds) WHERE tenant = \(tenant.rawValue) AND claimed_by = \(node)",
                logger: logger)
        }
    }

    public func advanceWebhook(for tenant: TenantName, from expected: Int64, to: Int64) async throws(RepositoryError) -> Bool {
        try await run { client, logger in
            try await !client.query(
                """
                UPDATE webhooks SET cursor_seq = \(to), attempts = 0, first_failure_at_ms = NULL, next_attempt_at_ms = 0, last_error = NULL
                WHERE tenant = \(tenant.rawValue) AND cursor_seq = \(expected) RETURNING tenant
                """, logger: logger
            ).collect().isEmpty
        }
    }

    public func recordWebhookFailure(
        for tenant: TenantName, at expected: Int64, attempts: Int, firstFailureAt: Date, nextAttemptAt: Date, error: String
    ) async throws(RepositoryError) {
        try await run { client, logger in
            try await client.query(
                """
                UPDATE webhooks SET attempts = \(Int32(clamping: attempts)), first_failure_at_ms = \(firstFailureAt.milliseconds),
                    next_attempt_at_ms = \(nextAttemptAt.milliseconds), last_error = \(error)
                WHERE tenant = \(tenant.rawValue) AND cursor_seq = \(expected)
                """, logger: logger)
        }
    }

    public func deadLetterWebhookHead(
        for tenant: TenantName, from expected: Int64, eventID: Int64, attempts: Int, firstFailureAt: Date, error: String, now: Date
    ) async throws(RepositoryError) -> Bool {
        let name = tenant.rawValue
        return try await transaction { connection, logger in
            let moved = try await connection.query(
                """
                UPDATE webhooks SET cursor_seq = \(eventID), attempts = 0, first_failure_at_ms = NULL, next_attempt_at_ms = 0, last_error = NULL
                WHERE tenant = \(name) AND cursor_seq = \(expected) RETURNING tenant
                """, logger: logger
            ).collect()
            guard !moved.isEmpty else { return false }
            try await connection.query(
                """
                INSERT INTO webhook_parked (tenant, seq, status, attempts, first_failure_at_ms, next_attempt_at_ms, last_error, parked_at_ms)
                VALUES (\(name), \(eventID), 'dead', \(Int32(clamping: attempts)), \(firstFailureAt.milliseconds), 0, \(error), \(now.milliseconds))
                ON CONFLICT (tenant, seq) DO UPDATE SET status = 'dead', attempts = excluded.attempts, last_error = excluded.last_error,
                    parked_at_ms = excluded.parked_at_ms
                """, logger: logger)
            return true
        }
    }

    public func parkedWebhookDeliveries(for tenant: TenantName, status: String, dueBy: Date?, limit: Int) async throws(RepositoryError)
        -> [ParkedWebhookDelivery]
    {
        let rows = try await run { client, logger in
            try await collectAll(
                try await client.query(
                    """
                    SELECT seq, status, attempts, first_failure_at_ms, next_attempt_at_ms, last_error, parked_at_ms FROM webhook_parked
                    WHERE tenant = \(tenant.rawValue) AND status = \(status) AND next_attempt_at_ms <= \(dueBy?.milliseconds ?? Int64.max)
                    ORDER BY seq LIMIT \(Int64(limit))
                    """, logger: logger
                ).decode((Int64, String, Int32, Int64?, Int64, String?, Int64).self))
        }
        return rows.map {
            ParkedWebhookDelivery(
                tenant: tenant, eventID: $0.0, status: $0.1, attempts: Int($0.2), firstFailureAt: $0.3.map(Date.init(milliseconds:)),
                nextAttemptAt: Date(milliseconds: $0.4), lastError: $0.5, parkedAt: Date(milliseconds: $0.6))
        }
    }

    public func updateParkedWebhookDelivery(_ delivery: ParkedWebhookDelivery, delivered: Bool) async throws(RepositoryError) {
        let name = delivery.tenant.rawValue
        let seq = delivery.eventID
        try await run { client, logger in
            if delivered {
                try await client.query("DELETE FROM webhook_parked WHERE tenant = \(name) AND seq = \(seq)", logger: logger)
                return
            }
            try await client.query(
                """
                UPDATE webhook_parked SET status = \(delivery.status), attempts = \(Int32(clamping: delivery.attempts)),
                    first_failure_at_ms = \(delivery.firstFailureAt?.milliseconds), next_attempt_at_ms = \(delivery.nextAttemptAt.milliseconds),
                    last_error = \(delivery.lastError), parked_at_ms = \(delivery.parkedAt.milliseconds)
                WHERE tenant = \(name) AND seq = \(seq)
                """, logger: logger)
        }
    }

    public func requeueWebhookDelivery(for tenant: TenantName, eventID: Int64, now: Date) async throws(RepositoryError) -> Bool {
        try await transaction { connection, logger in
            let requeued = try await connection.query(
                """
                UPDATE webhook_parked SET status = 'queued', attempts = 0, first_failure_at_ms = NULL, next_attempt_at_ms = \(now.milliseconds),
                    parked_at_ms = \(now.milliseconds)
                WHERE tenant = \(tenant.rawValue) AND seq = \(eventID) AND status = 'dead' RETURNING seq
                """, logger: logger
            ).collect()
            guard !requeued.isEmpty else { return false }
            try await connection.query("UPDATE webhooks SET claimed_until_ms = CASE WHEN claimed_by IS NULL THEN 0 ELSE claimed_until_ms END WHERE tenant = \(tenant.rawValue)", logger: logger)
            return true
        }
    }

    public func rewindWebhook(for tenant: TenantName, after: Int64) async throws(RepositoryError) -> Bool {
        try await run { client, logger in
            try await !client.query(
                """
                UPDATE webhooks
                SET cursor_seq = LEAST(\(max(0, after)), COALESCE((SELECT last_seq FROM tenant_event_sequences WHERE tenant = \(tenant.rawValue)), 0)),
                    attempts = 0, first_failure_at_ms = NULL, next_attempt_at_ms = 0, last_error = NULL,
                    claimed_until_ms = CASE WHEN claimed_by IS NULL THEN 0 ELSE claimed_until_ms END
                WHERE tenant = \(tenant.rawValue) RETURNING tenant
                """, logger: logger
            ).collect().isEmpty
        }
    }

    public func webhookBacklog() async throws(RepositoryError) -> (depth: Int, oldest: Date?) {
        let rows = try await run { client, logger in
            try await collectAll(
                try await client.query(
                    "SELECT COUNT(*), MIN(e.at_ms) FROM webhooks w JOIN tenant_events e ON e.tenant = w.tenant AND e.seq > w.cursor_seq",
                    logger: logger
                ).decode((Int64, Int64?).self))
        }
        return (Int(rows.first?.0 ?? 0), rows.first?.1.map(Date.init(milliseconds:)))
    }

    public func webhookHealth() async throws(RepositoryError) -> [WebhookHealth] {
        let rows = try await run { client, logger in
            try await collectAll(
                try await client.query(
                    """
                    SELECT w.tenant, w.url, w.attempts, w.first_failure_at_ms, w.last_error,
                        (SELECT COUNT(*) FROM tenant_events e WHERE e.tenant = w.tenant AND e.seq > w.cursor_seq),
                        (SELECT COUNT(*) FROM webhook_parked p WHERE p.tenant = w.tenant AND p.status = 'dead')
                    FROM webhooks w ORDER BY w.tenant
                    """, logger: logger
                ).decode((String, String, Int32, Int64?, String?, Int64, Int64).self))
        }
        return try rows.map { row throws(RepositoryError) in
            guard let tenant = try? TenantName(row.0) else { throw RepositoryError(.corrupt, "invalid tenant name in webhooks") }
            return WebhookHealth(
                tenant: tenant, url: row.1, pending: Int(row.5), dead: Int(row.6), attempts: Int(row.2),
                firstFailureAt: row.3.map(Date.init(milliseconds:)), lastError: row.4)
        }
    }

    private func binds(_ text: String) -> PostgresBindings {
        var bindings = PostgresBindings()
        bindings.append(text)
        return bindings
    }

    private func webhooks(_ query: PostgresQuery) async throws(RepositoryError) -> [StoredWebhook] {
        let rows = try await run { client, logger in try await collectAll(try await client.query(query, logger: logger).decode(WebhookRow.self)) }
        return try rows.map { row throws(RepositoryError) in
            guard let tenant = try? TenantName(row.0) else { throw RepositoryError(.corrupt, "invalid tenant name in webhooks") }
            return StoredWebhook(
                tenant: tenant, url: row.1, events: row.2.split(separator: ",").map(String.init), sealedSecret: Array(row.3.readableBytesView),
                cursor: row.4, attempts: Int(row.5), firstFailureAt: row.6.map(Date.init(milliseconds:)), nextAttemptAt: Date(milliseconds: row.7),
                lastError: row.8)
        }
    }
}
