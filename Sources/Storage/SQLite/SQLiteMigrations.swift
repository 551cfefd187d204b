import GRDB

/// The SQLite schema, as append-only migrations: never edit one that has shipped, add a new one.
enum SQLiteMigrations {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("2026-11-25-1-initial") { db in
            try db.execute(
                sql: """
                    CREATE TABLE tenants (
                        name TEXT PRIMARY KEY NOT NULL,
                        created_at_ms INTEGER NOT NULL,
                        mfa_enabled INTEGER NOT NULL
                    );
                    CREATE TABLE admin_tokens (
                        tenant TEXT PRIMARY KEY NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
                        phc TEXT NOT NULL,
                        updated_at_ms INTEGER NOT NULL
                    );
                    CREATE TABLE operator_tokens (
                        id INTEGER PRIMARY KEY CHECK (id = 1),
                        phc TEXT NOT NULL,
                        updated_at_ms INTEGER NOT NULL
                    );
                    CREATE TABLE otp_secrets (
                        tenant TEXT PRIMARY KEY NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
                        sealed BLOB NOT NULL,
                        last_step INTEGER
                    );
                    CREATE TABLE session_desired (
                        tenant TEXT PRIMARY KEY NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
                        desired TEXT NOT NULL CHECK (desired IN ('running', 'stopped')),
                        updated_at_ms INTEGER NOT NULL
                    );
                    CREATE TABLE session_leases (
                        tenant TEXT PRIMARY KEY NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
                        node_id TEXT NOT NULL,
                        generation INTEGER NOT NULL,
                        expires_at_ms INTEGER NOT NULL,
                        last_beat_at_ms INTEGER NOT NULL,
                        state TEXT NOT NULL,
                        last_error TEXT
                    );
                    CREATE INDEX session_leases_node ON session_leases(node_id);
                    CREATE TABLE audit_log (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        at_ms INTEGER NOT NULL,
                        actor TEXT NOT NULL,
                        action TEXT NOT NULL,
                        tenant TEXT,
                        client_address TEXT,
                        detail TEXT
                    );
                    CREATE INDEX audit_log_tenant ON audit_log(tenant, id);
                    """)
        }
        migrator.registerMigration("2026-12-04-1-tenant-instance-id") { db in
            // NULL for existing tenants: their files stay sealed under the name-only key and remain readable.
            try db.execute(sql: "ALTER TABLE tenants ADD COLUMN instance_id TEXT")
        }
        migrator.registerMigration("2026-12-04-2-sealed-records") { db in
            // The Signal store: each row sealed by the caller (AES-GCM bound to tenant, kind and key).
            try db.execute(
                sql: """
                    CREATE TABLE sealed_records (
                        tenant TEXT NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
                        kind TEXT NOT NULL,
                        record_key TEXT NOT NULL,
                        sealed BLOB NOT NULL,
                        updated_at_ms INTEGER NOT NULL,
                        PRIMARY KEY (tenant, kind, record_key)
                    ) WITHOUT ROWID
                    """)
        }
        migrator.registerMigration("2026-12-04-3-event-log") { db in
            try db.execute(
                sql: """
                    CREATE TABLE tenant_events (
                        tenant TEXT NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
                        seq INTEGER NOT NULL,
                        type TEXT NOT NULL,
                        at_ms INTEGER NOT NULL,
                        data TEXT NOT NULL,
                        dedupe_key TEXT,
                        PRIMARY KEY (tenant, seq)
                    ) WITHOUT ROWID;
                    CREATE UNIQUE INDEX tenant_events_dedupe ON tenant_events(tenant, dedupe_key) WHERE dedupe_key IS NOT NULL;
                    CREATE INDEX tenant_events_at ON tenant_events(at_ms);
                    CREATE TABLE tenant_event_sequences (
                        tenant TEXT PRIMARY KEY NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
                        last_seq INTEGER NOT NULL
                    );
                    """)
        }
        migrator.registerMigration("2026-12-05-1-whatsapp-codes") { db in
            // WhatsApp one-time codes: where they go, the live code's keyed hash, and when codes were asked for.
            try db.execute(
                sql: """
                    ALTER TABLE tenants ADD COLUMN mfa_number TEXT;
                    CREATE TABLE whatsapp_codes (
                        tenant TEXT PRIMARY KEY NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
                        code_hash BLOB NOT NULL,
                        issued_at_ms INTEGER NOT NULL,
                        expires_at_ms INTEGER NOT NULL,
                        wrong_tries INTEGER NOT NULL DEFAULT 0
                    );
                    CREATE INDEX whatsapp_codes_expiry ON whatsapp_codes(expires_at_ms);
                    CREATE TABLE whatsapp_code_requests (
                        tenant TEXT NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
                        at_ms INTEGER NOT NULL
                    );
                    CREATE INDEX whatsapp_code_requests_tenant ON whatsapp_code_requests(tenant, at_ms);
                    """)
        }
        migrator.registerMigration("2026-12-05-2-webhooks") { db in
            // A webhook per tenant with its cursor into the event log (the outbox), and deliveries taken out of the stream.
            try db.execute(
                sql: """
                    CREATE TABLE webhooks (
                        tenant TEXT PRIMARY KEY NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
                        url TEXT NOT NULL,
                        events TEXT NOT NULL,
                        sealed_secret BLOB NOT NULL,
                        cursor_seq INTEGER NOT NULL,
                        attempts INTEGER NOT NULL DEFAULT 0,
                        first_failure_at_ms INTEGER,
                        next_attempt_at_ms INTEGER NOT NULL DEFAULT 0,
                        last_error TEXT
                    );
                    CREATE TABLE webhook_parked (
                        tenant TEXT NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
                        seq INTEGER NOT NULL,
                        status TEXT NOT NULL,
                        attempts INTEGER NOT NULL,
                        first_failure_at_ms INTEGER,
                        next_attempt_at_ms INTEGER NOT NULL,
                        last_error TEXT,
                        parked_at_ms INTEGER NOT NULL,
                        PRIMARY KEY (tenant, seq)
                    ) WITHOUT ROWID;
                    """)
        }
        migrator.registerMigration("2026-12-06-1-webhook-claims") { db in
            // The node delivering a webhook holds it until `claimed_until_ms`; released rows keep their release time,
            // so ordering by it serves the longest-waiting webhook first.
            try db.execute(
                sql: """
                    ALTER TABLE webhooks ADD COLUMN claimed_by TEXT;
                    ALTER TABLE webhooks ADD COLUMN claimed_until_ms INTEGER NOT NULL DEFAULT 0;
                    """)
        }
        migrator.registerMigration("2026-12-07-1-dashboard-signins") { db in
            // Dashboard sign-ins shared by every node: keyed by SHA-256 of the cookie's id (a dump opens nothing);
            // `tenant` NULL is the operator. `seq` orders a principal's sign-ins for the per-principal limit.
            try db.execute(
                sql: """
                    CREATE TABLE dashboard_signins (
                        seq INTEGER PRIMARY KEY AUTOINCREMENT,
                        id_hash BLOB NOT NULL UNIQUE CHECK (length(id_hash) = 32),
                        tenant TEXT REFERENCES tenants(name) ON DELETE CASCADE,
                        generation TEXT NOT NULL,
                        created_at_ms INTEGER NOT NULL,
                        expires_at_ms INTEGER NOT NULL
                    );
                    CREATE INDEX dashboard_signins_principal ON dashboard_signins(tenant, seq);
                    CREATE INDEX dashboard_signins_expiry ON dashboard_signins(expires_at_ms);
                    """)
        }
        migrator.registerMigration("2026-12-07-2-cluster-nodes") { db in
            // Each node's advertised address (where other nodes forward requests for its sessions) and heartbeat.
            try db.execute(
                sql: """
                    CREATE TABLE cluster_nodes (
                        node_id TEXT PRIMARY KEY NOT NULL,
                        advertise_url TEXT,
                        started_at_ms INTEGER NOT NULL,
                        last_beat_at_ms INTEGER NOT NULL
                    ) WITHOUT ROWID;
                    """)
        }
        migrator.registerMigration("2026-12-07-3-node-drain") { db in
            // Set by `POST /operator/nodes/{id}/drain`; the node hands its sessions over and takes none while it is set.
            try db.execute(sql: "ALTER TABLE cluster_nodes ADD COLUMN drain_requested_at_ms INTEGER")
        }
        return migrator
    }
}
