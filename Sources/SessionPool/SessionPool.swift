import Foundation
import Logging
import Metrics
import ServiceLifecycle
import Tenancy
import WhatsApp
import WahostBasics

/// Runs one WhatsApp session per tenant: leases so one node owns each session, restore on start, reconnects with
/// backoff, terminal states kept terminal, and status updates fanned out to subscribers.
///
/// Sessions hold no threads: each running session is one runner task (connect, run, back off) plus one task that
/// reads the client's events; the pool's own maintenance (batched lease renewal, takeover scan) is one task.
public actor SessionPool: Service {
    let configuration: SessionPoolConfiguration
    let records: any SessionRecordRepository
    let credentialStore: @Sendable (TenantName) -> any CredentialStore
    let clientConfiguration: WhatsAppClientConfiguration
    let logger: Logger
    let metrics = PoolMetrics()
    /// Where session state changes are logged as `session` events (nil: not logged).
    let eventLog: EventLogWriter?
    /// Each tenant's Signal records (nil: sessions do not read messages; they are acked unread).
    let signalStore: (@Sendable (TenantName) -> any SignalRecordStore)?
    /// Where each lease this node takes is published for the stores that fence their writes with it.
    let leaseFences: LeaseFences?

    /// The `cluster_nodes` table (nil: this node keeps no row and knows no other node's address).
    let nodes: (any ClusterNodeRepository)?
    /// When this pool was made: the `started_at` of its node row.
    let startedAt: Date

    var sessions: [TenantName: Session] = [:]
    var remoteLeases: [TenantName: SessionLease] = [:]
    /// Every node's row as the last heartbeat read it, by node id.
    var clusterNodes: [String: ClusterNode] = [:]
    var subscribers = StatusSubscribers()
    /// Moves on at every session lifecycle change; `changedAt` holds each tenant's last stamp. A restore decided on
    /// records read before a tenant's last change is dropped (the read may predate a terminal stop).
    var lifecycleEpoch = Epoch()
    var changedAt: [TenantName: UInt64] = [:]
    /// Lease claims awaiting the database, per tenant.
    var claimsInFlight: [TenantName: Int] = [:]
    /// Tenants a logout is working on: no restore starts them meanwhile.
    var operatorBusy: Set<TenantName> = []
    var restoreQueue = RestoreQueue()
    /// Message ids of sends with an idempotency key in progress.
    var sendsInFlight: Set<String> = []
    var restoreWorkers = 0
    /// Callers waiting until no restore worker runs (a shutdown).
    var restoreWorkersIdle: [CheckedContinuation<Void, Never>] = []
    var firstScanDone = false
    /// A scan is due soon because another node handed sessions over.
    var handoverScanPending = false
    /// An operator asked this node to drain: it hands every session over and takes none.
    var draining = false
    /// A drain's or balance's handover is under way (one at a time).
    var handingOverInProgress = false
    /// Sessions being stopped to be handed over (their leases are released marked for another node).
    var handingOver: Set<TenantName> = []
    /// When this node handed each session over: it answers "moving" for it and balances no more until they are taken.
    var handedOverAt: [TenantName: Date] = [:]
    /// Sessions on their first connection attempt after this node took them (restore, takeover, handover).
    var arriving: Set<TenantName> = []
    /// When each tenant's lease was last read for `owner(of:)` (a request for a session no node is known to run).
    var ownerLookups: [TenantName: Date] = [:]
    /// Balancing moves left this minute.
    lazy var moveBudget = MoveBudget(perMinute: configuration.balanceMovesPerMinute)
    var shuttingDown = false
    var lastRenewal = Date()
    var maintenance: Task<Void, Never>?

    /// One tenant's session as this node runs it.
    struct Session {
        let client: WhatsAppClient
        var status: SessionStatus
        var generation: Int64?
        var runner: Task<Void, Never>?
        var listener: Task<Void, Never>?
        /// What the runner decides, as a value (`SessionLifecycle`).
        var lifecycle = SessionLifecycle()
        var codeExpiry: Task<Void, Never>?
    }

    public init(
        configuration: SessionPoolConfiguration, records: any SessionRecordRepository, clientConfiguration: WhatsAppClientConfiguration,
        credentialStore: @escaping @Sendable (TenantName) -> any CredentialStore, logger: Logger, eventLog: EventLogWriter? = nil,
        signalStore: (@Sendable (TenantName) -> any SignalRecordStore)? = nil, leaseFences: LeaseFences? = nil,
        nodes: (any ClusterNodeRepository)? = nil
    ) {
        self.leaseFences = leaseFences
        self.nodes = nodes
        self.startedAt = configuration.clock.now()
        self.eventLog = eventLog
        self.signalStore = signalStore
        self.configuration = configuration
        self.records = records
        self.clientConfiguration = clientConfiguration
        self.credentialStore = credentialStore
        self.logger = logger
    }

    /// The node id leases are taken under.
    public nonisolated var nodeID: String { configuration.nodeID }
    /// A lease (and a node row) not renewed for this long is dead.
    public nonisolated var leaseTTL: Duration { configuration.leaseTTL }

    // MARK: Service

    /// Restores stored sessions, renews leases and takes over orphaned sessions until graceful shutdown; then
    /// closes every session without logging it out and releases its lease.
    public func run() async throws {
        startMaintenance()
        try? await gracefulShutdown()
        await shutdown()
    }

    /// Starts the maintenance loop (restore, heartbeats, takeover) if it is not running; `run()` calls it.
    public func startMaintenance() {
        guard maintenance == nil, !shuttingDown else { return }
        logger.info("session pool starting", metadata: ["node": "\(configuration.nodeID)"])
        maintenance = Task { await self.maintenanceLoop() }
    }

    /// Closes every session (no logout), releases leases, ends subscriptions.
    public func shutdown() async {
        guard !shuttingDown else { return }
        shuttingDown = true
        maintenance?.cancel()
        await maintenance?.value
        let running = sessions.filter { $0.value.runner != nil }.map(\.key)
        logger.info("session pool stopping", metadata: ["sessions": "\(running.count)"])
        // Marked as draining first, so the nodes taking the handed-over sessions do not count this one among them.
        if !running.isEmpty { await markLeaving() }
        let now = configuration.clock.now()
        for tenant in running { handedOverAt[tenant] = now }
        await withTaskGroup(of: Void.self) { group in
            for tenant in running { group.addTask { await self.stopRunner(tenant, finalState: .stopped) } }
        }
        // A restore under way hands its session straight on (or drops it); the lease and database work it does must end
        // before the node leaves the cluster and its caller closes the database.
        if restoreWorkers > 0 { await withCheckedContinuation { restoreWorkersIdle.append($0) } }
        for tenant in sessions.keys { sessions[tenant]?.listener?.cancel() }
        subscribers.finishAll()
        await leaveCluster()
        if let eventLog, await !eventLog.flushed(within: .seconds(5)) {
            logger.warning("session events not yet stored at shutdown; the next start records the state it finds")
        }
        logger.info("session pool stopped")
    }

    /// True once every session that should run here was given its first connection attempt.
    public var isRestored: Bool { firstScanDone && restoreQueue.isIdle }

    // MARK: Queries

    /// The session's current status, from this node or, when another node runs it, from that node's lease.
    public func status(of tenant: TenantName) -> SessionStatus {
        if let session = sessions[tenant], session.runner != nil { return session.status }
        if let lease = remoteLeases[tenant], lease.expiresAt > configuration.clock.now() {
            return SessionStatus(
                tenant: tenant, state: SessionState(rawValue: lease.state) ?? .connecting, lastError: lease.lastError,
                ownerNode: lease.nodeID, lastHeartbeat: lease.lastBeatAt)
        }
        return sessions[tenant]?.status ?? SessionStatus(tenant: tenant, state: .stopped)
    }

    /// Status updates for one tenant: the current status first, then every change (newest kept when slow).
    public func updates(of tenant: TenantName) -> AsyncStream<SessionStatus> {
        let (stream, continuation) = AsyncStream.makeStream(of: SessionStatus.self, bufferingPolicy: .bufferingNewest(8))
        continuation.yield(status(of: tenant))
        guard !shuttingDown else {
            continuation.finish()
            return stream
        }
        let id = subscribers.add(continuation, of: tenant)
        continuation.onTermination = { _ in Task { await self.unsubscribe(tenant, id) } }
        return stream
    }

    // MARK: Commands

    /// Starts QR pairing if the tenant is not paired and not pairing; returns the status with the current QR string.
    public func qrCode(for tenant: TenantName) async throws(SessionPoolError) -> SessionStatus {
        try await ensurePairing(tenant)
        let status = await waitForStatus(of: tenant, timeout: configuration.qrWait) {
            $0.qr != nil || $0.pairingMethod == .code || !($0.state == .connecting || $0.state == .pairing)
        }
        if let status, status.qr != nil { return status }
        if status?.pairingMethod == .code { throw SessionPoolError(.wrongState, "a link-code pairing is in progress") }
        if status?.state == .connected { throw SessionPoolError(.wrongState, "the session is already paired") }
        throw SessionPoolError(.upstreamUnavailable, "no QR code from WhatsApp: " + (status?.lastError ?? "timed out"))
    }

    /// Starts phone-number code pairing; returns the 8-character code to type on the phone.
    public func pairingCode(for tenant: TenantName, phoneNumber: String) async throws(SessionPoolError) -> String {
        try await ensurePairing(tenant)
        let ready = await waitForStatus(of: tenant, timeout: configuration.qrWait) {
            $0.state == .pairing || !($0.state == .connecting)
        }
        guard ready?.state == .pairing, let client = sessions[tenant]?.client else {
            throw SessionPoolError(.upstreamUnavailable, "WhatsApp did not start pairing: " + (ready?.lastError ?? "timed out"))
        }
        let code: String
        do {
            code = try await client.requestPairingCode(phoneNumber: phoneNumber)
        } catch let error as WhatsAppClientError {
            if error.isInvalidPhoneNumber { throw SessionPoolError(.invalidInput, error.description) }
            throw SessionPoolError(.upstreamUnavailable, error.description)
        } catch {
            throw SessionPoolError(.upstreamUnavailable, "\(error)")
        }
        let lifetime = configuration.pairingCodeLifetime
        update(tenant) {
            $0.qr = nil
            $0.qrExpiresAt = configuration.clock.now().addingTimeInterval(lifetime.timeInterval)
            $0.pairingMethod = .code
        }
        sessions[tenant]?.codeExpiry?.cancel()
        sessions[tenant]?.codeExpiry = Task {
            try? await configuration.clock.sleep(lifetime)
            guard !Task.isCancelled else { return }
            await self.expireLinkCode(tenant)
        }
        return code
    }

    /// The client of a session connected on this node; otherwise why not.
    func connectedClient(of tenant: TenantName) throws(SessionPoolError) -> WhatsAppClient {
        guard let session = sessions[tenant], session.runner != nil else {
            if let owner = liveRemoteOwner(of: tenant) { throw SessionPoolError(.ownedElsewhere, "the session runs on node \(owner)") }
            throw notConnected(tenant)
        }
        guard session.status.state == .connected, !handingOver.contains(tenant) else {
            throw notConnected(tenant, state: session.status.state)
        }
        return session.client
    }

    /// The groups the tenant's account is in; the session must be connected on this node.
    public func groups(for tenant: TenantName) async throws(SessionPoolError) -> [SessionGroup] {
        let client = try connectedClient(of: tenant)
        do {
            return try await client.groups().map { SessionGroup(id: $0.id, subject: $0.subject, participants: $0.participants) }
        } catch let error as WhatsAppClientError where error.isNotConnected {
            throw notConnected(tenant)
        } catch {
            throw SessionPoolError(.upstreamUnavailable, "group listing failed: \(error)")
        }
    }

    /// Unlinks the companion (when connected), ends the session and wipes its credentials; idempotent from any state.
    public func logout(_ tenant: TenantName) async throws(SessionPoolError) {
        if sessions[tenant]?.runner == nil, let owner = liveRemoteOwner(of: tenant) {
            throw SessionPoolError(.ownedElsewhere, "the session runs on node \(owner)")
        }
        operatorBusy.insert(tenant)
        defer { operatorBusy.remove(tenant) }
        if let session = sessions[tenant], session.runner != nil {
            if await session.client.isLoggedIn {
                do { try await session.client.logout() } catch {
                    logger.warning("logout IQ failed; wiping locally", metadata: ["tenant": "\(tenant)", "error": "\(error)"])
                }
            }
            await stopRunner(tenant, finalState: nil)
        }
        // Desired `stopped` first: a node that takes the lease after the wipe then finds nothing to restore, and one that
        // took it before fences the wipe out (the logout fails and is retried on that node).
        await setDesired(.stopped, for: tenant)
        do {
            try await credentialStore(tenant).wipe()
        } catch {
            ensureEntry(tenant)
            update(tenant) {
                $0.state = .stopped
                $0.lastError = "logout could not wipe the credentials; retry the logout"
            }
            throw SessionPoolError(.unavailable, "cannot wipe credentials: \(error)")
        }
        ensureEntry(tenant)
        update(tenant) { status in
            status = SessionStatus(tenant: tenant, state: .loggedOut)
        }
    }

    /// Operator action: (re)starts a paired session from any state, e.g. after `replaced` or `failed`.
    public func restart(_ tenant: TenantName) async throws(SessionPoolError) {
        if sessions[tenant]?.runner == nil, let owner = liveRemoteOwner(of: tenant) {
            throw SessionPoolError(.ownedElsewhere, "the session runs on node \(owner)")
        }
        await stopRunner(tenant, finalState: .stopped)
        guard try await isPaired(tenant) else {
            throw SessionPoolError(.wrongState, "the tenant is not paired; request a QR or pairing code")
        }
        await setDesired(.running, for: tenant)
        try await claimAndStart(tenant)
    }

    /// Stops the tenant's session without logging out and forgets it (the tenant is being deleted).
    public func remove(_ tenant: TenantName) async {
        await stopRunner(tenant, finalState: .stopped)
        markChanged(tenant)
        if let session = sessions.removeValue(forKey: tenant) {
            session.listener?.cancel()
            metrics.left(session.status.state)
        }
        remoteLeases[tenant] = nil
        subscribers.finish(tenant)
    }
}
