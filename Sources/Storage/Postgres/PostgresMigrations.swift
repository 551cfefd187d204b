import Foundation
import Logging
import PostgresNIO
import Tenancy

/// The PostgreSQL schema, as append-only migrations applied under an advisory lock so nodes can start together.
enum PostgresMigrations {
    /// Each migration: an id and its statements (postgres-nio runs one statement per query).
    static let all: [(id: String, statements: [PostgresQuery])] = [
        (
            "2026-11-25-1-initial",
            [
                """
                CREATE TABLE tenants (
                    name TEXT PRIMARY KEY,
                    created_at_ms BIGINT NOT NULL,
                    mfa_enabled BOOLEAN NOT NULL
                )
                """,
                """
                CREATE TABLE admin_tokens (
                    tenant TEXT PRIMARY KEY REFERENCES tenants(name) ON DELETE CASCADE,
                    phc TEXT NOT NULL,
                    updated_at_ms BIGINT NOT NULL
                )
                """,
                """
                CREATE TABLE operator_tokens (
                    id INTEGER PRIMARY KEY CHECK (id = 1),
                    phc TEXT NOT NULL,
                    updated_at_ms BIGINT NOT NULL
                )
                """,
                """
                CREATE TABLE otp_secrets (
                    tenant TEXT PRIMARY KEY REFERENCES tenants(name) ON DELETE CASCADE,
                    sealed BYTEA NOT NULL,
                    last_step BIGINT
                )
                """,
                """
                CREATE TABLE session_desired (
                    tenant TEXT PRIMARY KEY REFERENCES tenants(name) ON DELETE CASCADE,
                    desired TEXT NOT NULL CHECK (desired IN ('running', 'stopped')),
                    updated_at_ms BIGINT NOT NULL
                )
                """,
                """
                CREATE TABLE session_leases (
                    tenant TEXT PRIMARY KEY REFERENCES tenants(name) ON DELETE CASCADE,
                    node_id TEXT NOT NULL,
                    generation BIGINT NOT NULL,
                    expires_at_ms BIGINT NOT NULL,
                    last_beat_at_ms BIGINT NOT NULL,
                    state TEXT NOT NULL,
                    last_error TEXT
                )
                """,
                "CREATE INDEX session_leases_node ON session_leases(node_id)",
                """
                CREATE TABLE audit_log (
                    id BIGSERIAL PRIMARY KEY,
                    at_ms BIGINT NOT NULL,
                    actor TEXT NOT NULL,
                    action TEXT NOT NULL,
                    tenant TEXT,
                    client_address TEXT,
                    detail TEXT
                )
                """,
                "CREATE INDEX audit_log_tenant ON audit_log(tenant, id)",
            ]
        ),
        // NULL for existing tenants: their files stay sealed under the name-only key and remain readable.
        ("2026-12-04-1-tenant-instance-id", ["ALTER TABLE tenants ADD COLUMN instance_id TEXT"]),
        (
            "2026-12-04-2-sealed-records",
            [
                """
                CREATE TABLE sealed_records (
                    tenant TEXT NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
                    kind TEXT NOT NULL,
                    record_key TEXT NOT NULL,
                    sealed BYTEA NOT NULL,
                    updated_at_ms BIGINT NOT NULL,
                    PRIMARY KEY (tenant, kind, record_key)
                )
                """
            ]
        ),
        (
            "2026-12-04-3-event-log",
            [
                """
                CREATE TABLE tenant_events (
                    tenant TEXT NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
                    seq BIGINT NOT NULL,
                    type TEXT NOT NULL,
                    at_ms BIGINT NOT NULL,
                    data TEXT NOT NULL,
                    dedupe_key TEXT,
                    PRIMARY KEY (tenant, seq)
                )
                """,
                "CREATE UNIQUE INDEX tenant_events_dedupe ON tenant_events(tenant, dedupe_key) WHERE dedupe_key IS NOT NULL",
                "CREATE INDEX tenant_events_at ON tenant_events(at_ms)",
                """
                CREATE TABLE tenant_event_sequences (
                    tenant TEXT PRIMARY KEY NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
                    last_seq BIGINT NOT NULL
                )
                """,
            ]
        ),
        (
            "2026-12-05-1-whatsapp-codes",
            [
                "ALTER TABLE tenants ADD COLUMN mfa_number TEXT",
                """
                CREATE TABLE whatsapp_codes (
                    tenant TEXT PRIMARY KEY NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
                    code_hash BYTEA NOT NULL,
                    issued_at_ms BIGINT NOT NULL,
                    expires_at_ms BIGINT NOT NULL,
                    wrong_tries INTEGER NOT NULL DEFAULT 0
                )
                """,
                "CREATE INDEX whatsapp_codes_expiry ON whatsapp_codes(expires_at_ms)",
                """
                CREATE TABLE whatsapp_code_requests (
                    tenant TEXT NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
                    at_ms BIGINT NOT NULL
                )
                """,
                "CREATE INDEX whatsapp_code_requests_tenant ON whatsapp_code_requests(tenant, at_ms)",
            ]
        ),
        (
            "2026-12-05-2-webhooks",
            [
                """
                CREATE TABLE webhooks (
                    tenant TEXT PRIMARY KEY NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
                    url TEXT NOT NULL,
                    events TEXT NOT NULL,
                    sealed_secret BYTEA NOT NULL,
                    cursor_seq BIGINT NOT NULL,
                    attempts INTEGER NOT NULL DEFAULT 0,
                    first_failure_at_ms BIGINT,
                    next_attempt_at_ms BIGINT NOT NULL DEFAULT 0,
                    last_error TEXT
                )
                """,
                """
                CREATE TABLE webhook_parked (
                    tenant TEXT NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
                    seq BIGINT NOT NULL,
                    status TEXT NOT NULL,
                    attempts INTEGER NOT NULL,
                    first_failure_at_ms BIGINT,
                    next_attempt_at_ms BIGINT NOT NULL,
                    last_error TEXT,
                    parked_at_ms BIGINT NOT NULL,
                    PRIMARY KEY (tenant, seq)
                )
                """,
            ]
        ),
        (
            "2026-12-06-1-webhook-claims",
            [
                "ALTER TABLE webhooks ADD COLUMN claimed_by TEXT",
                "ALTER TABLE webhooks ADD COLUMN claimed_until_ms BIGINT NOT NULL DEFAULT 0",
            ]
        ),
        // Dashboard sign-ins shared by every node: keyed by SHA-256 of the cookie's id (a dump opens nothing);
        // `tenant` NULL is the operator. `seq` orders a principal's sign-ins for the per-principal limit.
        (
            "2026-12-07-1-dashboard-signins",
            [
                """
                CREATE TABLE dashboard_signins (
                    seq BIGSERIAL PRIMARY KEY,
                    id_hash BYTEA NOT NULL UNIQUE CHECK (length(id_hash) = 32),
                    tenant TEXT REFERENCES tenants(name) ON DELETE CASCADE,
                    generation TEXT NOT NULL,
                    created_at_ms BIGINT NOT NULL,
                    expires_at_ms BIGINT NOT NULL
                )
                """,
                "CREATE INDEX dashboard_signins_principal ON dashboard_signins(tenant, seq)",
                "CREATE INDEX dashboard_signins_expiry ON dashboard_signins(expires_at_ms)",
            ]
        ),
        (
            "2026-12-07-2-cluster-nodes",
            [
                """
                CREATE TABLE cluster_nodes (
                    node_id TEXT PRIMARY KEY,
                    advertise_url TEXT,
                    started_at_ms BIGINT NOT NULL,
                    last_beat_at_ms BIGINT NOT NULL
                )
                """
            ]
        ),
        // Set by `POST /operator/nodes/{id}/drain`; the node hands its sessions over and takes none while it is set.
        ("2026-12-07-3-node-drain", ["ALTER TABLE cluster_nodes ADD COLUMN drain_requested_at_ms BIGINT"]),
    ]

    /// Applies every migration not yet recorded in `wahost_migrations`, in one transaction under an advisory lock:
    /// a second node starting at the same time waits, then finds everything applied.
    static func apply(on client: PostgresClient, logger: Logger) async throws(RepositoryError) {
        do {
            try await client.withTransaction(logger: logger) { connection in
                try await connection.query("SELECT pg_advisory_xact_lock(72657001)", logger: logger)
                try await connection.query(
                    "CREATE TABLE IF NOT EXISTS wahost_migrations (id TEXT PRIMARY KEY, applied_at_ms BIGINT NOT NULL)", logger: logger)
                let rows = try await connection.query("SELECT id FROM wahost_migrations", logger: logger)
                var applied: Set<String> = []
                for try await id in rows.decode(String.self) { applied.insert(id) }
                for migration in all where !applied.contains(migration.id) {
                    for statement in migration.statements { try await connection.query(statement, logger: logger) }
                    let now = Int64((Date().timeIntervalSince1970 * 1000).rounded(.down))
                    try await connection.query(
                        "INSERT INTO wahost_migrations (id, applied_at_ms) VALUES (\(migration.id), \(now))", logger: logger)
                    logger.info("applied migration", metadata: ["migration": "\(migration.id)"])
                }
            }
        } catch {
            throw PostgresSystemStore.map(error)
        }
    }
}
