import Foundation
import GRDB
import Logging
import Tenancy
import WahostBasics

/// The system database on SQLite (`system.db`, WAL) through GRDB; the default backend.
public final class SQLiteSystemStore: SystemStore {
    private let pool: DatabasePool
    /// The database file.
    public let path: String
    /// Reports outages (a lock held elsewhere, a full disk) once and fails writes fast while they last.
    let outage: StorageOutage

    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    public init(path: String, busyTimeout: TimeInterval = 5, logger: Logger = Logger(label: "wahost.storage.sqlite")) throws(RepositoryError) {
        self.path = path
        outage = StorageOutage(backend: "sqlite", logger: logger)
        var configuration = Configuration()
        configuration.busyMode = .timeout(busyTimeout)
        configuration.label = "wahost.system"
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            try SQLiteMigrations.migrator.migrate(pool)
        } catch {
            throw RepositoryError(.unavailable, "cannot open SQLite database at \(path): \(error)")
        }
    }

    public func close() async throws(RepositoryError) {
        do { try pool.close() } catch { throw Self.map(error) }
    }

    public var backendName: String { "sqlite" }

    public func ping() async throws(RepositoryError) {
        try await read { db in _ = try Int.fetchOne(db, sql: "SELECT 1") }
    }

    // MARK: TenantRepository

    public func createTenant(_ tenant: Tenant, adminTokenHash: String, otpSecret: [UInt8]?) async throws(RepositoryError) {
        try await write { db in
            try db.execute(
                sql: "INSERT INTO tenants (name, created_at_ms, mfa_enabled, instance_id, mfa_number) VALUES (?, ?, ?, ?, ?)",
                arguments: [tenant.name.rawValue, tenant.createdAt.milliseconds, tenant.mfaEnabled, tenant.instanceID, tenant.mfaNumber])
            try db.execute(
                sql: "INSERT INTO admin_tokens (tenant, phc, updated_at_ms) VALUES (?, ?, ?)",
                arguments: [tenant.name.rawValue, adminTokenHash, tenant.createdAt.milliseconds])
            if let otpSecret {
                try db.execute(
                    sql: "INSERT INTO otp_secrets (tenant, sealed, last_step) VALUES (?, ?, NULL)",
                    arguments: [tenant.name.rawValue, Data(otpSecret)])
            }
        }
    }

    public func tenant(named name: TenantName) async throws(RepositoryError) -> Tenant? {
        try await read { db in
            try Row.fetchOne(
                db, sql: "SELECT name, created_at_ms, mfa_enabled, instance_id, mfa_number FROM tenants WHERE name = ?", arguments: [name.rawValue]
            ).map(Self.tenant(from:))
        }
    }

    public func listTenants(limit: Int?) async throws(RepositoryError) -> [Tenant] {
        try await read { db in
            try Row.fetchAll(db, sql: "SELECT name, created_at_ms, mfa_enabled, instance_id, mfa_number FROM tenants ORDER BY name LIMIT ?", arguments: [limit ?? -1])
                .map(Self.tenant(from:))
        }
    }

    public func deleteTenant(named name: TenantName) async throws(RepositoryError) -> Bool {
        try await write { db in
            try db.execute(sql: "DELETE FROM tenants WHERE name = ?", arguments: [name.rawValue])
            return db.changesCount > 0
        }
    }

    // MARK: AdminTokenRepository

    public func adminTokenHash(for tenant: TenantName) async throws(RepositoryError) -> String? {
        // Every authenticated request asks this: one cached statement, no snapshot transaction around it.
        try await readOneStatement { db in
            try String.fetchOne(db.cachedStatement(sql: "SELECT phc FROM admin_tokens WHERE tenant = ?"), arguments: [tenant.rawValue])
        }
    }

    public func replaceAdminTokenHash(for tenant: TenantName, with hash: String) async throws(RepositoryError) {
        try await write { db in
            try db.execute(
                sql: "UPDATE admin_tokens SET phc = ?, updated_at_ms = ? WHERE tenant = ?",
                arguments: [hash, Date().milliseconds, tenant.rawValue])
            if db.changesCount == 0 { throw RepositoryError(.notFound, "no tenant named '\(tenant)'") }
        }
    }

    public func operatorTokenHash() async throws(RepositoryError) -> String? {
        try await read { db in try String.fetchOne(db, sql: "SELECT phc FROM operator_tokens WHERE id = 1") }
    }

    public func replaceOperatorTokenHash(with hash: String) async throws(RepositoryError) {
        try await write { db in
            try db.execute(
                sql: """
                    INSERT INTO operator_tokens (id, phc, updated_at_ms) VALUES (1, ?, ?)
                    ON CONFLICT(id) DO UPDATE SET phc = excluded.phc, updated_at_ms = excluded.updated_at_ms
                    """,
                arguments: [hash, Date().milliseconds])
        }
    }

    // MARK: OTPSecretRepository

    public func otpSecret(for tenant: TenantName) async throws(RepositoryError) -> StoredOTPSecret? {
        try await read { db in
            try Row.fetchOne(db, sql: "SELECT sealed, last_step FROM otp_secrets WHERE tenant = ?", arguments: [tenant.rawValue]).map {
                StoredOTPSecret(sealedSecret: Array($0["sealed"] as Data), lastAcceptedStep: $0["last_step"])
            }
        }
    }

    public func replaceOTPSecret(for tenant: TenantName, with sealedSecret: [UInt8]?) async throws(RepositoryError) {
        try await write { db in
            guard try Bool.fetchOne(db, sql: "SELECT 1 FROM tenants WHERE name = ?", arguments: [tenant.rawValue]) != nil else {
                throw RepositoryError(.notFound, "no tenant named '\(tenant)'")
            }
            try db.execute(sql: "UPDATE tenants SET mfa_enabled = ? WHERE name = ?", arguments: [sealedSecret != nil, tenant.rawValue])
            if let sealedSecret {
                try db.execute(
                    sql: """
                        INSERT INTO otp_secrets (tenant, sealed, last_step) VALUES (?, ?, NULL)
                        ON CONFLICT(tenant) DO UPDATE SET sealed = excluded.sealed, last_step = NULL
                        """,
                    arguments: [tenant.rawValue, Data(sealedSecret)])
            } else {
                try db.execute(sql: "DELETE FROM otp_secrets WHERE tenant = ?", arguments: [tenant.rawValue])
            }
        }
    }

    public func consumeOTPStep(for tenant: TenantName, step: Int64) async throws(RepositoryError) -> Bool {
        try await write { db in
            try db.execute(
                sql: "UPDATE otp_secrets SET last_step = ? WHERE tenant = ? AND (last_step IS NULL OR last_step < ?)",
                arguments: [step, tenant.rawValue, step])
            return db.changesCount == 1
        }
    }

    // MARK: SessionRecordRepository

    public func setDesiredState(_ state: DesiredSessionState, for tenant: TenantName, fence: LeaseFence?) async throws(RepositoryError) {
        try await write { db in
            // The write transaction is the only writer: no lease changes between this check and the write.
            if let fence {
                let lease = try Row.fetchOne(
                    db, sql: "SELECT tenant, node_id, generation, expires_at_ms, last_beat_at_ms, state, last_error FROM session_leases WHERE tenant = ?",
                    arguments: [tenant.rawValue]
                ).map { row in try SQLiteSystemStore.lease(from: row) }
                guard fence.holds(over: lease) else { throw RepositoryError.leaseLost(tenant) }
            }
            try db.execute(
                sql: """
                    INSERT INTO session_desired (tenant, desired, updated_at_ms) VALUES (?, ?, ?)
                    ON CONFLICT(tenant) DO UPDATE SET desired = excluded.desired, updated_at_ms = excluded.updated_at_ms
                    """,
                arguments: [tenant.rawValue, state.rawValue, Date().milliseconds])
        }
    }

    public func desiredStates() async throws(RepositoryError) -> [TenantName: DesiredSessionState] {
        let rows = try await read { db in
            try Row.fetchAll(db, sql: "SELECT tenant, desired FROM session_desired").map { ($0["tenant"] as String, $0["desired"] as String) }
        }
        return try decodeDesiredStates(rows)
    }

    public func acquireLease(for tenant: TenantName, nodeID: String, ttl: Duration, now: Date) async throws(RepositoryError)
        -> SessionLease?
    {
        let nowMS = now.milliseconds
        let expires = nowMS + ttl.wholeMilliseconds
        return try await write { db in
            try Row.fetchOne(db, sql: Self.acquireLeaseSQL, arguments: [tenant.rawValue, nodeID, expires, nowMS, nowMS])
                .map { try Self.lease(from: $0) }
        }
    }

    public func renewLeases(_ beats: [LeaseBeat], nodeID: String, ttl: Duration, now: Date) async throws(RepositoryError)
        -> Set<TenantName>
    {
        guard !beats.isEmpty else { return [] }
        let nowMS = now.milliseconds
        let expires = nowMS + ttl.wholeMilliseconds
        return try await write { db in
            var lost: Set<TenantName> = []
            let statement = try db.cachedStatement(
                sql: """
                    UPDATE session_leases SET expires_at_ms = ?, last_beat_at_ms = ?, state = ?, last_error = ?
                    WHERE tenant = ? AND node_id = ? AND generation = ? AND expires_at_ms > 0
                    """)
            for beat in beats {
                try statement.execute(arguments: [expires, nowMS, beat.state, beat.lastError, beat.tenant.rawValue, nodeID, beat.generation])
                if db.changesCount == 0 { lost.insert(beat.tenant) }
            }
            return lost
        }
    }

    public func releaseLease(for tenant: TenantName, nodeID: String, generation: Int64, handOver: Bool) async throws(RepositoryError) {
        try await write { db in
            try db.execute(
                sql: """
                    UPDATE session_leases SET expires_at_ms = 0, last_beat_at_ms = ?, state = ?, last_error = NULL
                    WHERE tenant = ? AND node_id = ? AND generation = ? AND expires_at_ms > 0
                    """,
                arguments: [Date().milliseconds, handOver ? handedOverLeaseState : releasedLeaseState, tenant.rawValue, nodeID, generation])
        }
    }

    public func leases() async throws(RepositoryError) -> [SessionLease] {
        try await read { db in
            try Row.fetchAll(
                db,
                sql: "SELECT tenant, node_id, generation, expires_at_ms, last_beat_at_ms, state, last_error FROM session_leases ORDER BY tenant"
            ).map { try Self.lease(from: $0) }
        }
    }

    public func lease(of tenant: TenantName) async throws(RepositoryError) -> SessionLease? {
        try await read { db in
            try Row.fetchOne(
                db,
                sql: "SELECT tenant, node_id, generation, expires_at_ms, last_beat_at_ms, state, last_error FROM session_leases WHERE tenant = ?",
                arguments: [tenant.rawValue]
            ).map { try Self.lease(from: $0) }
        }
    }

    // MARK: AuditLogRepository

    public func appendAudit(_ event: AuditEvent) async throws(RepositoryError) {
        try await write { db in
            try db.execute(
                sql: "INSERT INTO audit_log (at_ms, actor, action, tenant, client_address, detail) VALUES (?, ?, ?, ?, ?, ?)",
                arguments: [event.at.milliseconds, event.actor, event.action, event.tenant, event.clientAddress, event.detail])
        }
    }

    public func trimAudit(olderThan cutoff: Date) async throws(RepositoryError) -> Int {
        try await write { db in
            try db.execute(sql: "DELETE FROM audit_log WHERE at_ms < ?", arguments: [cutoff.milliseconds])
            return db.changesCount
        }
    }

    public func auditEvents(tenant: String?, limit: Int) async throws(RepositoryError) -> [AuditEvent] {
        try await read { db in
            let rows =
                if let tenant {
                    try Row.fetchAll(
                        db, sql: "SELECT * FROM audit_log WHERE tenant = ? ORDER BY id DESC LIMIT ?", arguments: [tenant, max(0, limit)])
                } else {
                    try Row.fetchAll(db, sql: "SELECT * FROM audit_log ORDER BY id DESC LIMIT ?", arguments: [max(0, limit)])
                }
            return rows.map { row in
                AuditEvent(
                    at: Date(milliseconds: row["at_ms"]), actor: row["actor"], action: row["action"], tenant: row["tenant"],
                    clientAddress: row["client_address"], detail: row["detail"])
            }
        }
    }

    // MARK: Helpers

    /// Takes a lease that is free, expired or already this node's. Every take starts a new tenure (a new generation). Binds: tenant, node, expires, now, now.
    private static let acquireLeaseSQL = """
        INSERT INTO session_leases (tenant, node_id, generation, expires_at_ms, last_beat_at_ms, state, last_error)
        VALUES (?, ?, 1, ?, ?, 'starting', NULL)
        ON CONFLICT (tenant) DO UPDATE SET
            generation = session_leases.generation + 1,
            node_id = excluded.node_id, state = 'starting', last_error = NULL,
            expires_at_ms = excluded.expires_at_ms,
            last_beat_at_ms = excluded.last_beat_at_ms
        WHERE session_leases.node_id = excluded.node_id OR session_leases.expires_at_ms <= ?
        RETURNING tenant, node_id, generation, expires_at_ms, last_beat_at_ms, state, last_error
        """

    func read<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws(RepositoryError) -> T {
        do { return try await pool.read(body) } catch { throw failed(error) }
    }

    /// A read made of one statement, which SQLite runs atomically: no deferred transaction around it.
    func readOneStatement<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws(RepositoryError) -> T {
        do { return try await pool.unsafeRead(body) } catch { throw failed(error) }
    }

    /// A write; while writes fail (the file locked by another process, the disk full) they fail at once but for a
    /// probe a second, instead of each waiting out the busy timeout in the one writer's queue. Reads go on meanwhile.
    func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws(RepositoryError) -> T {
        if let refusal = outage.refusal() { throw refusal }
        do {
            let value = try await pool.write(body)
            outage.succeeded()
            return value
        } catch {
            throw failed(error)
        }
    }

    private func failed(_ error: any Error) -> RepositoryError {
        let mapped = Self.map(error)
        if Self.meansUnusable(error) { outage.failed(mapped) }
        return mapped
    }

    /// Whether a failure says the file cannot be used now (locked elsewhere, disk full, I/O), not that a statement was refused.
    private static func meansUnusable(_ error: any Error) -> Bool {
        guard let error = error as? DatabaseError else { return false }
        let codes: [ResultCode] = [.SQLITE_BUSY, .SQLITE_LOCKED, .SQLITE_FULL, .SQLITE_IOERR, .SQLITE_CANTOPEN, .SQLITE_READONLY, .SQLITE_NOMEM, .SQLITE_PROTOCOL]
        return codes.contains(error.resultCode)
    }

    private static func map(_ error: any Error) -> RepositoryError {
        if let error = error as? RepositoryError { return error }
        if let error = error as? DatabaseError {
            switch error.extendedResultCode {
            case .SQLITE_CONSTRAINT_PRIMARYKEY, .SQLITE_CONSTRAINT_UNIQUE: return RepositoryError(.conflict, "row already exists")
            case .SQLITE_CONSTRAINT_FOREIGNKEY: return RepositoryError(.notFound, "referenced tenant does not exist")
            default: return RepositoryError(.unavailable, "SQLite: \(error.message ?? "\(error.resultCode)")")
            }
        }
        return RepositoryError(.unavailable, "SQLite: \(error)")
    }

    private static func tenant(from row: Row) throws -> Tenant {
        guard let name = try? TenantName(row["name"] as String) else { throw RepositoryError(.corrupt, "invalid tenant name in tenants") }
        return Tenant(
            name: name, createdAt: Date(milliseconds: row["created_at_ms"]), mfaEnabled: row["mfa_enabled"], instanceID: row["instance_id"],
            mfaNumber: row["mfa_number"])
    }

    static func lease(from row: Row) throws(RepositoryError) -> SessionLease {
        let tenantText: String = row["tenant"]
        guard let tenant = try? TenantName(tenantText) else { throw RepositoryError(.corrupt, "invalid tenant name in session_leases") }
        return SessionLease(
            tenant: tenant, nodeID: row["node_id"], generation: row["generation"], expiresAt: Date(milliseconds: row["expires_at_ms"]),
            lastBeatAt: Date(milliseconds: row["last_beat_at_ms"]), state: row["state"], lastError: row["last_error"])
    }
}
