import Foundation
import WahostBasics

/// The tenants table. Creating a tenant stores its token hash and OTP secret in the same transaction.
public protocol TenantRepository: Sendable {
    /// Inserts a tenant with its admin-token hash and optional sealed OTP secret; throws `.conflict` if it exists.
    func createTenant(_ tenant: Tenant, adminTokenHash: String, otpSecret: [UInt8]?) async throws(RepositoryError)
    /// The tenant with this name, if any.
    func tenant(named name: TenantName) async throws(RepositoryError) -> Tenant?
    /// The tenants ordered by name, at most `limit` of them (all when nil).
    func listTenants(limit: Int?) async throws(RepositoryError) -> [Tenant]
    /// Deletes a tenant and every row that belongs to it (not its audit entries); false if there was none.
    func deleteTenant(named name: TenantName) async throws(RepositoryError) -> Bool
}

extension TenantRepository {
    /// All tenants, ordered by name.
    public func listTenants() async throws(RepositoryError) -> [Tenant] { try await listTenants(limit: nil) }
}

/// Admin-token hashes (argon2id PHC strings), per tenant and for the operator.
public protocol AdminTokenRepository: Sendable {
    /// The tenant's current token hash, or nil if the tenant does not exist.
    func adminTokenHash(for tenant: TenantName) async throws(RepositoryError) -> String?
    /// Replaces the tenant's token hash; throws `.notFound` for an unknown tenant.
    func replaceAdminTokenHash(for tenant: TenantName, with hash: String) async throws(RepositoryError)
    /// The operator token hash, if one was issued.
    func operatorTokenHash() async throws(RepositoryError) -> String?
    /// Sets the operator token hash.
    func replaceOperatorTokenHash(with hash: String) async throws(RepositoryError)
}

/// Sealed TOTP secrets with their replay guard.
public protocol OTPSecretRepository: Sendable {
    /// The tenant's sealed secret and last accepted step, or nil if it has none.
    func otpSecret(for tenant: TenantName) async throws(RepositoryError) -> StoredOTPSecret?
    /// Replaces (or with nil, removes) the tenant's secret and clears its replay guard; `.notFound` for an unknown tenant.
    func replaceOTPSecret(for tenant: TenantName, with sealedSecret: [UInt8]?) async throws(RepositoryError)
    /// Atomically records `step` as used if it is later than the last accepted one; false if it was not.
    func consumeOTPStep(for tenant: TenantName, step: Int64) async throws(RepositoryError) -> Bool
}

/// WhatsApp one-time codes: the number they go to, at most one live code per tenant, and when codes were asked for.
public protocol WhatsAppCodeRepository: Sendable {
    /// Sets (or with nil, clears) the tenant's `mfa_number`; `.notFound` for an unknown tenant.
    func setMFANumber(_ number: String?, for tenant: TenantName) async throws(RepositoryError)
    /// Atomically records a request at `now` if `policy` allows one (``WhatsAppCodePolicy/nextAllowed(after:now:)``);
    /// otherwise records nothing and returns the instant the next one is allowed.
    func recordWhatsAppCodeRequest(for tenant: TenantName, now: Date, policy: WhatsAppCodePolicy) async throws(RepositoryError) -> Date?
    /// Stores the tenant's live code, replacing any earlier one.
    func replaceWhatsAppCode(_ code: StoredWhatsAppCode, for tenant: TenantName) async throws(RepositoryError)
    /// The tenant's live code, if any.
    func whatsAppCode(for tenant: TenantName) async throws(RepositoryError) -> StoredWhatsAppCode?
    /// Deletes the code with this hash; false if it is gone (used, replaced, voided or expired).
    func deleteWhatsAppCode(for tenant: TenantName, hash: [UInt8]) async throws(RepositoryError) -> Bool
    /// Counts a wrong try against the code with this hash and deletes it at `limit`; the tries so far, nil if it is gone.
    func countWrongTry(onWhatsAppCode hash: [UInt8], for tenant: TenantName, limit: Int) async throws(RepositoryError) -> Int?
    /// Deletes every code expired at `now`; the tenants they belonged to.
    func deleteExpiredWhatsAppCodes(at now: Date) async throws(RepositoryError) -> [TenantName]
}

extension SessionRecordRepository {
    /// Records the desired state unfenced (operator tools, tests).
    public func setDesiredState(_ state: DesiredSessionState, for tenant: TenantName) async throws(RepositoryError) {
        try await setDesiredState(state, for: tenant, fence: nil)
    }
}

/// Desired session state and the lease/heartbeat rows that give each session one owner.
public protocol SessionRecordRepository: Sendable {
    /// Records whether the tenant's session should run; `.notFound` for an unknown tenant, `.fenced` (nothing written)
    /// when `fence` does not hold over the tenant's lease row.
    func setDesiredState(_ state: DesiredSessionState, for tenant: TenantName, fence: LeaseFence?) async throws(RepositoryError)
    /// The desired state of every tenant that has one.
    func desiredStates() async throws(RepositoryError) -> [TenantName: DesiredSessionState]
    /// Takes the lease if it is free, expired, or already this node's; nil while another node holds it.
    func acquireLease(for tenant: TenantName, nodeID: String, ttl: Duration, now: Date) async throws(RepositoryError)
        -> SessionLease?
    /// Renews all of a node's leases in one transaction; returns the tenants whose lease the node no longer holds.
    func renewLeases(_ beats: [LeaseBeat], nodeID: String, ttl: Duration, now: Date) async throws(RepositoryError)
        -> Set<TenantName>
    /// Gives up a lease held by this node at this generation (the row stays, free, so generations only grow); a
    /// lease taken over since is left alone. `handOver`: another node should take the session now (a drain), and
    /// nodes listening for handovers are told.
    func releaseLease(for tenant: TenantName, nodeID: String, generation: Int64, handOver: Bool) async throws(RepositoryError)
    /// Every lease row, released ones included (free: expired).
    func leases() async throws(RepositoryError) -> [SessionLease]
    /// The tenant's lease row, if it has one.
    func lease(of tenant: TenantName) async throws(RepositoryError) -> SessionLease?
    /// The tenants whose lease another node just handed over, as they happen; nil when the backend cannot tell (the
    /// takeover scan then finds them on its next pass).
    func leaseHandovers() -> AsyncStream<TenantName>?
}

extension SessionRecordRepository {
    /// Gives up a lease without asking another node to take the session now.
    public func releaseLease(for tenant: TenantName, nodeID: String, generation: Int64) async throws(RepositoryError) {
        try await releaseLease(for: tenant, nodeID: nodeID, generation: generation, handOver: false)
    }

    public func leaseHandovers() -> AsyncStream<TenantName>? { nil }
}

/// The `state` of a released lease row: a session handed over for another node to take at once.
public let handedOverLeaseState = "handover"
/// The `state` of a released lease row: a session that stopped here.
public let releasedLeaseState = "released"

/// The append-only audit log.
public protocol AuditLogRepository: Sendable {
    /// Appends one entry.
    func appendAudit(_ event: AuditEvent) async throws(RepositoryError)
    /// Deletes entries older than `cutoff`; returns how many were deleted.
    func trimAudit(olderThan cutoff: Date) async throws(RepositoryError) -> Int
    /// The newest entries first, optionally only those about one tenant.
    func auditEvents(tenant: String?, limit: Int) async throws(RepositoryError) -> [AuditEvent]
}

/// Every repository the system database offers, as one value.
public typealias SystemRepositories = TenantRepository & AdminTokenRepository & OTPSecretRepository & WhatsAppCodeRepository & WebhookRepository & SealedRecordRepository & EventLogRepository
    & DashboardSignInRepository
    & SessionRecordRepository & AuditLogRepository & ClusterNodeRepository

/// The error vocabulary every repository adapter promises.
public struct RepositoryError: Error, CustomStringConvertible {
    /// What kind of failure this is.
    public enum Kind: Sendable, Equatable {
        /// A row with this key already exists.
        case conflict
        /// The row the call needs does not exist.
        case notFound
        /// The database could not be reached or refused the statement.
        case unavailable
        /// Stored data does not match what the schema promises.
        case corrupt
        /// The write's lease fence no longer holds: another node owns the session now.
        case fenced
    }

    /// What kind of failure this is.
    public let kind: Kind
    /// A message for logs and operators; never contains secrets.
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}

/// One write to a tenant's sealed records: new bytes for a record, or nil to delete it.
public struct SealedRecordChange: Sendable, Equatable {
    /// What the record is (`session`, `identity`, `sender-key`).
    public var kind: String
    /// Which one of its kind.
    public var key: String
    /// The sealed bytes; nil deletes the record.
    public var sealed: [UInt8]?

    public init(kind: String, key: String, sealed: [UInt8]?) {
        self.kind = kind
        self.key = key
        self.sealed = sealed
    }
}

/// Per-tenant records stored sealed in the system database (the Signal store); the caller seals and opens them.
public protocol SealedRecordRepository: Sendable {
    /// The stored bytes of those of `keys` (of `kind`) that exist.
    func sealedRecords(of tenant: TenantName, kind: String, keys: [String]) async throws(RepositoryError) -> [String: [UInt8]]
    /// Applies every change of every tenant in one transaction (a group commit), except the writes whose fence does
    /// not hold; returns their indices. Each tenant must exist.
    func applySealedRecords(_ batch: [SealedRecordWrite]) async throws(RepositoryError) -> Set<Int>
    /// The keys of every record of `kind` the tenant has, sorted.
    func sealedRecordKeys(of tenant: TenantName, kind: String) async throws(RepositoryError) -> [String]
}

extension SealedRecordRepository {
    /// Applies one tenant's changes in one transaction; the tenant must exist.
    public func writeSealedRecords(of tenant: TenantName, _ changes: [SealedRecordChange]) async throws(RepositoryError) {
        try await writeSealedRecords([SealedRecordWrite(tenant: tenant, changes: changes)])
    }

    /// Applies the batch; throws `.fenced` (and writes nothing of that write) when a fence does not hold.
    public func writeSealedRecords(_ batch: [SealedRecordWrite]) async throws(RepositoryError) {
        if let first = try await applySealedRecords(batch).min() { throw RepositoryError.leaseLost(batch[first].tenant) }
    }
}

/// One tenant's record changes in a batch.
public struct SealedRecordWrite: Sendable {
    public var tenant: TenantName
    public var changes: [SealedRecordChange]
    /// What must hold in `session_leases` for the changes to land; nil: nothing (tools, tests).
    public var fence: LeaseFence?

    public init(tenant: TenantName, changes: [SealedRecordChange], fence: LeaseFence? = nil) {
        self.tenant = tenant
        self.changes = changes
        self.fence = fence
    }
}

/// The lease condition a write of a session's records is made under, checked in the write's transaction.
public enum LeaseFence: Sendable, Equatable {
    /// This node holds the tenant's lease at this generation (a session writing its own state).
    case holder(nodeID: String, generation: Int64)
    /// No other node holds a live lease on the tenant at `now` (a stopped session's wipe).
    case noOtherLiveHolder(nodeID: String, now: Date)
}

/// One caller's share of a group commit: events and sealed records stored together or not at all (a received message
/// and the Signal state that decrypted it).
public struct DurableWrite: Sendable {
    public var events: [NewTenantEvent]
    public var records: SealedRecordWrite?
    /// Writes of a batch with the same number build on each other: once one is fenced, the later ones are left out too.
    public var chain: Int?

    public init(events: [NewTenantEvent] = [], records: SealedRecordWrite? = nil, chain: Int? = nil) {
        self.events = events
        self.records = records
        self.chain = chain
    }

    /// True when the write stores nothing.
    public var isEmpty: Bool { events.isEmpty && records?.changes.isEmpty != false }
}

/// Commits sealed record writes, each with its events in the same transaction, in the order they were submitted
/// (one queue per process: a session's later state never lands before its earlier).
public protocol DurableWriter: Sendable {
    /// Queues the records and the events for a shared transaction, after everything queued before; `settled` is called
    /// once they are durable or failed: `.fenced` when the records' fence does not hold (nothing of the write is
    /// stored), and at once, unwritten, when an earlier write of `chain` failed (a failure fails the chain's rest).
    func submit(
        _ records: SealedRecordWrite, with events: [NewTenantEvent], chain: WriteChain?,
        settled: @escaping @Sendable (Result<Void, RepositoryError>) -> Void)
}

extension DurableWriter {
    /// Stores the records and the events as `submit` does; returns once durable.
    public func write(_ records: SealedRecordWrite, with events: [NewTenantEvent], chain: WriteChain? = nil) async throws(RepositoryError) {
        let result = await withCheckedContinuation { continuation in
            submit(records, with: events, chain: chain) { continuation.resume(returning: $0) }
        }
        try result.get()
    }
}

/// An event to append to a tenant's event log.
public struct NewTenantEvent: Sendable, Equatable {
    public var tenant: TenantName
    /// `session`, `message`, `receipt`.
    public var type: String
    public var at: Date
    /// The event's `data` object, as JSON text.
    public var data: String
    /// Events with a key the tenant's log already holds are skipped (a redelivered message, say).
    public var dedupeKey: String?

    public init(tenant: TenantName, type: String, at: Date, data: String, dedupeKey: String? = nil) {
        self.tenant = tenant
        self.type = type
        self.at = at
        self.data = data
        self.dedupeKey = dedupeKey
    }
}

/// An event as the log holds it: numbered per tenant from 1, never renumbered.
public struct StoredTenantEvent: Sendable, Equatable {
    public var id: Int64
    public var type: String
    public var at: Date
    public var data: String

    public init(id: Int64, type: String, at: Date, data: String) {
        self.id = id
        self.type = type
        self.at = at
        self.data = data
    }
}

/// The durable per-tenant event log (served as SSE and JSON pages; webhooks deliver from it).
public protocol EventLogRepository: Sendable {
    /// Appends in order, all or none; returns each event's id, or nil for one skipped as a duplicate.
    func appendEvents(_ events: [NewTenantEvent]) async throws(RepositoryError) -> [Int64?]
    /// Stores the batch in one transaction: each write's events appended (ids as for `appendEvents`) and its records
    /// written, or neither when its records' fence does not hold or an earlier write of its chain's was left out (nil
    /// in the result). Each tenant must exist.
    func commit(_ batch: [DurableWrite]) async throws(RepositoryError) -> [[Int64?]?]
    /// Up to `limit` events of `tenant` with ids above `after`, oldest first.
    func events(of tenant: TenantName, after: Int64, limit: Int) async throws(RepositoryError) -> [StoredTenantEvent]
    /// The stored event of `tenant` with this dedupe key, if the log still holds it.
    func event(of tenant: TenantName, dedupeKey: String) async throws(RepositoryError) -> StoredTenantEvent?
    /// The newest `limit` events of `tenant` of the given types, oldest first.
    func recentEvents(of tenant: TenantName, types: [String], limit: Int) async throws(RepositoryError) -> [StoredTenantEvent]
    /// Deletes events older than `cutoff`; ids are not reused. Returns how many went.
    func trimEvents(olderThan cutoff: Date) async throws(RepositoryError) -> Int
}
