import Foundation
import Logging
import NIOCore
import NIOSSL
import PostgresNIO
import Tenancy
import WahostBasics

/// The system database on PostgreSQL through postgres-nio, selected by a `postgres://` URL; several nodes may share it.
public final class PostgresSystemStore: SystemStore {
    let client: PostgresClient
    private let runTask: Task<Void, Never>
    let logger: Logger
    /// Reports outages once and fails calls fast while the database is away.
    let outage: StorageOutage
    /// The longest one call may wait for the database.
    let callDeadline: Duration

    /// How long a connection may sit idle inside a transaction before PostgreSQL ends its session: below the call
    /// deadline, so a frozen node's locks never make another node's call time out (and fail it over to "unavailable").
    static let abandonedTransactionLimit = Duration.seconds(3)

    /// Connects to the database named by `url`, applies pending migrations and checks the connection.
    public init(
        url: PostgresURL, callDeadline: Duration = .seconds(5), logger: Logger = Logger(label: "wahost.storage.postgres")
    ) async throws(RepositoryError) {
        var configuration = PostgresClient.Configuration(
            host: url.host, port: url.port, username: url.username, password: url.password, database: url.database,
            tls: url.clientTLS)
        configuration.options.maximumConnections = 8
        configuration.options.connectTimeout = .seconds(10)
        // A transaction left open by a process that stopped making progress (SIGSTOP, a paused VM) holds its row locks
        // (leases, event sequences) until PostgreSQL ends it: end it before another node's call on them gives up.
        configuration.options.additionalStartupParameters = [("idle_in_transaction_session_timeout", "\(Self.abandonedTransactionLimit.wholeMilliseconds)")]
        // The client logs each failed connection attempt at info; an outage is reported once by `outage` instead.
        var backgroundLogger = logger
        backgroundLogger.logLevel = max(logger.logLevel, .notice)
        let client = PostgresClient(configuration: configuration, backgroundLogger: backgroundLogger)
        self.client = client
        self.logger = logger
        self.callDeadline = callDeadline
        self.outage = StorageOutage(backend: "postgres", logger: logger)
        self.runTask = Task { await client.run() }
        do {
            try await PostgresMigrations.apply(on: client, logger: logger)
        } catch {
            runTask.cancel()
            throw error
        }
    }

    public var backendName: String { "postgres" }

    public func ping() async throws(RepositoryError) {
        try await run { client, logger in try await client.query("SELECT 1", logger: logger) }
    }

    public func close() async throws(RepositoryError) {
        runTask.cancel()
        await runTask.value
    }

    // MARK: TenantRepository

    public func createTenant(_ tenant: Tenant, adminTokenHash: String, otpSecret: [UInt8]?) async throws(RepositoryError) {
        try await transaction { connection, logger in
            let name = tenant.name.rawValue
            let created = tenant.createdAt.milliseconds
            try await connection.query(
                """
                INSERT INTO tenants (name, created_at_ms, mfa_enabled, instance_id, mfa_number)
                VALUES (\(name), \(created), \(tenant.mfaEnabled), \(tenant.instanceID), \(tenant.mfaNumber))
                """, logger: logger)
            try await connection.query(
                "INSERT INTO admin_tokens (tenant, phc, updated_at_ms) VALUES (\(name), \(adminTokenHash), \(created))", logger: logger)
            if let otpSecret {
                let sealed = ByteBuffer(bytes: otpSecret)
                try await connection.query("INSERT INTO otp_secrets (tenant, sealed, last_step) VALUES (\(name), \(sealed), NULL)", logger: logger)
            }
        }
    }

    public func tenant(named name: TenantName) async throws(RepositoryError) -> Tenant? {
        try await tenants(query: "SELECT name, created_at_ms, mfa_enabled, instance_id, mfa_number FROM tenants WHERE name = \(name.rawValue)").first
    }

    public func listTenants(limit: Int?) async throws(RepositoryError) -> [Tenant] {
        guard let limit else { return try await tenants(query: "SELECT name, created_at_ms, mfa_enabled, instance_id, mfa_number FROM tenants ORDER BY name") }
        return try await tenants(query: "SELECT name, created_at_ms, mfa_enabled, instance_id, mfa_number FROM tenants ORDER BY name LIMIT \(Int64(max(0, limit)))")
    }

    public func deleteTenant(named name: TenantName) async throws(RepositoryError) -> Bool {
        try await run { client, logger in
            let rows = try await client.query("DELETE FROM tenants WHERE name = \(name.rawValue) RETURNING name", logger: logger)
            return try await rows.collect().count > 0
        }
    }

    // MARK: AdminTokenRepository

    public func adminTokenHash(for tenant: TenantName) async throws(RepositoryError) -> String? {
        try await run { client, logger in
            try await collectAll(try await client.query("SELECT phc FROM admin_tokens WHERE tenant = \(tenant.rawValue)", logger: logger).decode(String.self)).first
        }
    }

    public func replaceAdminTokenHash(for tenant: TenantName, with hash: String) async throws(RepositoryError) {
        let updated = try await run { client, logger in
            try await client.query(
                "UPDATE admin_tokens SET phc = \(hash), updated_at_ms = \(Date().milliseconds) WHERE tenant = \(tenant.rawValue) RETURNING tenant",
                logger: logger
            ).collect().count
        }
        if updated == 0 { throw RepositoryError(.notFound, "no tenant named '\(tenant)'") }
    }

    public func operatorTokenHash() async throws(RepositoryError) -> String? {
        try await run { client, logger in
            try await collectAll(try await client.query("SELECT phc FROM operator_tokens WHERE id = 1", logger: logger).decode(String.self)).first
        }
    }

    public func replaceOperatorTokenHash(with hash: String) async throws(RepositoryError) {
        try await run { client, logger in
            try await client.query(
                """
                INSERT INTO operator_tokens (id, phc, updated_at_ms) VALUES (1, \(hash), \(Date().milliseconds))
                ON CONFLICT (id) DO UPDATE SET phc = excluded.phc, updated_at_ms = excluded.updated_at_ms
                """, logger: logger)
        }
    }

    // MARK: OTPSecretRepository

    public func otpSecret(for tenant: TenantName) async throws(RepositoryError) -> StoredOTPSecret? {
        try await run { client, logger in
            let rows = try await client.query("SELECT sealed, last_step FROM otp_secrets WHERE tenant = \(tenant.rawValue)", logger: logger)
            for try await (sealed, lastStep) in rows.decode((ByteBuffer, Int64?).self) {
                return StoredOTPSecret(sealedSecret: Array(sealed.readableBytesView), lastAcceptedStep: lastStep)
            }
            return nil
        }
    }

    public func replaceOTPSecret(for tenant: TenantName, with sealedSecret: [UInt8]?) async throws(RepositoryError) {
        try await transaction { connection, logger in
            let enabled = sealedSecret != nil
            let found = try await connection.query(
                "UPDATE tenants SET mfa_enabled = \(enabled) WHERE name = \(tenant.rawValue) RETURNING name", logger: logger
            ).collect().count
            guard found > 0 else { throw RepositoryError(.notFound, "no tenant named '\(tenant)'") }
            if let sealedSecret {
                let sealed = ByteBuffer(bytes: sealedSecret)
                try await connection.query(
                    """
                    INSERT INTO otp_secrets (tenant, sealed, last_step) VALUES (\(tenant.rawValue), \(sealed), NULL)
                    ON CONFLICT (tenant) DO UPDATE SET sealed = excluded.sealed, last_step = NULL
                    """, logger: logger)
            } else {
                try await connection.query("DELETE FROM otp_secrets WHERE tenant = \(tenant.rawValue)", logger: logger)
            }
        }
    }

    public func consumeOTPStep(for tenant: TenantName, step: Int64) async throws(RepositoryError) -> Bool {
        try await run { client, logger in
            try await client.query(
                """
                UPDATE otp_secrets SET last_step = \(step)
                WHERE tenant = \(tenant.rawValue) AND (last_step IS NULL OR last_step < \(step)) RETURNING tenant
                """, logger: logger
            ).collect().count == 1
        }
    }

    // MARK: SessionRecordRepository

    public func setDesiredState(_ state: DesiredSessionState, for tenant: TenantName, fence: LeaseFence?) async throws(RepositoryError) {
        try await transaction { connection, logger in
            if let fence {
                // Locked until the write commits, as for sealed records: a takeover waits for it, a renewal does not.
                let rows = try await connection.query(
                    """
                    SELECT tenant, node_id, generation, expires_at_ms, last_beat_at_ms, state, last_error FROM session_leases
                    WHERE tenant = \(tenant.rawValue) FOR KEY SHARE
                    """, logger: logger)
                guard fence.holds(over: try await Self.leases(rows).first) else { throw RepositoryError.leaseLost(tenant) }
            }
            try await connection.query(
                """
                INSERT INTO session_desired (tenant, desired, updated_at_ms) VALUES (\(tenant.rawValue), \(state.rawValue), \(Date().milliseconds))
                ON CONFLICT (tenant) DO UPDATE SET desired = excluded.desired, updated_at_ms = excluded.updated_at_ms
                """, logger: logger)
        }
    }

    public func desiredStates() async throws(RepositoryError) -> [TenantName: DesiredSessionState] {
        let rows = try await run { client, logger in
            try await collectAll(try await client.query("SELECT tenant, desired FROM session_desired", logger: logger).decode((String, String).self))
        }
        return try decodeDesiredStates(rows)
    }

    public func acquireLease(for tenant: TenantName, nodeID: String, ttl: Duration, now: Date) async throws(RepositoryError)
        -> SessionLease?
    {
        let nowMS = now.milliseconds
        let expires = nowMS + ttl.wholeMilliseconds
        return try await transaction { connection, logger in
            // A first claim inserts the row. Otherwise the row is locked `FOR UPDATE` before it changes hands: that waits
            // for every fenced write in flight (they lock it `FOR KEY SHARE`), so a write the old holder began before the
            // takeover commits before it, and one after it finds the new generation.
            let inserted = try await Self.leases(
                try await connection.query(
                    """
                    INSERT INTO session_leases (tenant, node_id, generation, expires_at_ms, last_beat_at_ms, state, last_error)
                    VALUES (\(tenant.rawValue), \(nodeID), 1, \(expires), \(nowMS), 'starting', NULL)
                    ON CONFLICT (tenant) DO NOTHING
                    RETURNING tenant, node_id, generation, expires_at_ms, last_beat_at_ms, state, last_error
                    """, logger: logger))
            if let lease = inserted.first { return lease }
            _ = try await connection.query("SELECT tenant FROM session_leases WHERE tenant = \(tenant.rawValue) FOR UPDATE", logger: logger).collect()
            return try await Self.leases(
                try await connection.query(
                    """
                    UPDATE session_leases SET
                        generation = generation + 1, node_id = \(nodeID), state = 'starting', last_error = NULL,
                        expires_at_ms = \(expires), last_beat_at_ms = \(nowMS)
                    WHERE tenant = \(tenant.rawValue) AND (node_id = \(nodeID) OR expires_at_ms <= \(nowMS))
                    RETURNING tenant, node_id, generation, expires_at_ms, last_beat_at_ms, state, last_error
                    """, logger: logger)
            ).first
        }
    }

    public func renewLeases(_ beats: [LeaseBeat], nodeID: String, ttl: Duration, now: Date) async throws(RepositoryError)
        -> Set<TenantName>
    {
        guard !beats.isEmpty else { return [] }
        let nowMS = now.milliseconds
        let expires = nowMS + ttl.wholeMilliseconds
        let tenants = beats.map(\.tenant.rawValue)
        let generations = beats.map(\.generation)
        let states = beats.map(\.state)
        // postgres-nio binds no arrays of optionals; an empty string stands for "no error".
        let errors = beats.map { $0.lastError ?? "" }
        let renewed = try await transaction { client, logger in
            // Locked in tenant order, so two renewals cannot deadlock. `FOR NO KEY UPDATE` does not wait for this
            // node's fenced writes (`FOR KEY SHARE`): a long prekey upload cannot hold its own lease's renewal past the TTL.
            _ = try await client.query(
                "SELECT tenant FROM session_leases WHERE tenant = ANY(\(tenants)::text[]) ORDER BY tenant FOR NO KEY UPDATE", logger: logger
            ).collect()
            let rows = try await client.query(
                """
                UPDATE session_leases AS l
                SET expires_at_ms = \(expires), last_beat_at_ms = \(nowMS), state = b.state, last_error = NULLIF(b.last_error, '')
                FROM unnest(\(tenants)::text[], \(generations)::int8[], \(states)::text[], \(errors)::text[])
                    AS b(tenant, generation, state, last_error)
                WHERE l.tenant = b.tenant AND l.node_id = \(nodeID) AND l.generation = b.generation AND l.expires_at_ms > 0
                RETURNING l.tenant
                """, logger: logger)
            return try await collectAll(rows.decode(String.self))
        }
        let renewedSet = Set(renewed)
        return Set(beats.lazy.map(\.tenant).filter { !renewedSet.contains($0.rawValue) })
    }

    public func releaseLease(for tenant: TenantName, nodeID: String, generation: Int64, handOver: Bool) async throws(RepositoryError) {
        let state = handOver ? handedOverLeaseState : releasedLeaseState
        try await run { client, logger in
            // A handover tells every listening node at once (`leaseHandovers`), in the release's own statement.
            try await client.query(
                """
                WITH released AS (
                    UPDATE session_leases SET expires_at_ms = 0, last_beat_at_ms = \(Date().milliseconds), state = \(state), last_error = NULL
                    WHERE tenant = \(tenant.rawValue) AND node_id = \(nodeID) AND generation = \(generation) AND expires_at_ms > 0
                    RETURNING tenant, state
                )
                SELECT pg_notify(\(Self.handoverChannel), tenant) FROM released WHERE state = \(handedOverLeaseState)
                """, logger: logger)
        }
    }

    /// The notification channel lease handovers are announced on.
    static let handoverChannel = "wahost_lease_handover"

    public func leaseHandovers() -> AsyncStream<TenantName>? {
        let (stream, continuation) = AsyncStream.makeStream(of: TenantName.self, bufferingPolicy: .bufferingNewest(4096))
        let (client, logger, outage) = (self.client, self.logger, self.outage)
        let listener = Task {
            while !Task.isCancelled {
                do {
                    try await client.withConnection { connection in
                        try await connection.listen(on: Self.handoverChannel) { notifications in
                            for try await notification in notifications {
                                if let tenant = try? TenantName(notification.payload) { continuation.yield(tenant) }
                            }
                        }
                    }
                } catch {
                    if Task.isCancelled { break }
                    // During an outage the store has said so once; the listener just retries.
                    let level: Logger.Level = outage.isUnavailable ? .debug : .warning
                    logger.log(level: level, "listening for lease handovers failed; retrying", metadata: ["error": "\(String(reflecting: error))"])
                }
                try? await Task.sleep(for: .seconds(1))
            }
            continuation.finish()
        }
        continuation.onTermination = { _ in listener.cancel() }
        return stream
    }

    public func leases() async throws(RepositoryError) -> [SessionLease] {
        try await leases(
            query: "SELECT tenant, node_id, generation, expires_at_ms, last_beat_at_ms, state, last_error FROM session_leases ORDER BY tenant")
    }

    public func lease(of tenant: TenantName) async throws(RepositoryError) -> SessionLease? {
        try await leases(
            query: """
                SELECT tenant, node_id, generation, expires_at_ms, last_beat_at_ms, state, last_error FROM session_leases
                WHERE tenant = \(tenant.rawValue)
                """
        ).first
    }

    // MARK: AuditLogRepository

    public func appendAudit(_ event: AuditEvent) async throws(RepositoryError) {
        try await run { client, logger in
            try await client.query(
                """
                INSERT INTO audit_log (at_ms, actor, action, tenant, client_address, detail)
                VALUES (\(event.at.milliseconds), \(event.actor), \(event.action), \(event.tenant), \(event.clientAddress), \(event.detail))
                """, logger: logger)
        }
    }

    public func trimAudit(olderThan cutoff: Date) async throws(RepositoryError) -> Int {
        try await run { client, logger in
            let rows = try await client.query("DELETE FROM audit_log WHERE at_ms < \(cutoff.milliseconds) RETURNING id", logger: logger)
            return try await rows.collect().count
        }
    }

    public func auditEvents(tenant: String?, limit: Int) async throws(RepositoryError) -> [AuditEvent] {
        let limit = Int64(max(0, limit))
        let query: PostgresQuery =
            if let tenant {
                "SELECT at_ms, actor, action, tenant, client_address, detail FROM audit_log WHERE tenant = \(tenant) ORDER BY id DESC LIMIT \(limit)"
            } else {
                "SELECT at_ms, actor, action, tenant, client_address, detail FROM audit_log ORDER BY id DESC LIMIT \(limit)"
            }
        return try await run { client, logger in
            try await collectAll(try await client.query(query, logger: logger).decode((Int64, String, String, String?, String?, String?).self)).map {
                AuditEvent(at: Date(milliseconds: $0.0), actor: $0.1, action: $0.2, tenant: $0.3, clientAddress: $0.4, detail: $0.5)
            }
        }
    }

    // MARK: Helpers

    private func tenants(query: PostgresQuery) async throws(RepositoryError) -> [Tenant] {
        let rows = try await run { client, logger in
            try await collectAll(try await client.query(query, logger: logger).decode((String, Int64, Bool, String?, String?).self))
        }
        return try rows.map { (name, created, mfa, instance, mfaNumber) throws(RepositoryError) in
            guard let tenantName = try? TenantName(name) else { throw RepositoryError(.corrupt, "invalid tenant name in tenants") }
            return Tenant(name: tenantName, createdAt: Date(milliseconds: created), mfaEnabled: mfa, instanceID: instance, mfaNumber: mfaNumber)
        }
    }

    private func leases(query: PostgresQuery) async throws(RepositoryError) -> [SessionLease] {
        try await run { client, logger in try await Self.leases(try await client.query(query, logger: logger)) }
    }

    /// Decodes lease rows (`tenant, node_id, generation, expires_at_ms, last_beat_at_ms, state, last_error`), read
    /// through the client or a transaction's connection.
    static func leases(_ rows: PostgresRowSequence) async throws -> [SessionLease] {
        var leases: [SessionLease] = []
        for try await row in rows.decode((String, String, Int64, Int64, Int64, String, String?).self) {
            guard let tenant = try? TenantName(row.0) else { throw RepositoryError(.corrupt, "invalid tenant name in session_leases") }
            leases.append(
                SessionLease(
                    tenant: tenant, nodeID: row.1, generation: row.2, expiresAt: Date(milliseconds: row.3),
                    lastBeatAt: Date(milliseconds: row.4), state: row.5, lastError: row.6))
        }
        return leases
    }

}

/// Reads a decoded row sequence to the end.
func collectAll<S: AsyncSequence>(_ sequence: S) async throws -> [S.Element] {
    var elements: [S.Element] = []
    for try await element in sequence { elements.append(element) }
    return elements
}
