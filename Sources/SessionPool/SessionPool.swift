import Foundation
import Logging
import Metrics
import ServiceLifecycle
import Tenancy
import WhatsApp

/// Runs one WhatsApp session per tenant: leases so one node owns each session, restore on start, reconnects with
/// backoff, terminal states kept terminal, and status updates fanned out to subscribers.
///
/// Sessions hold no threads: each running session is one runner task (connect, run, back off) plus one task that
/// reads the client's events; the pool's own maintenance (batched lease renewal, takeover scan) is one task.
public actor SessionPool: Service {
    private let configuration: SessionPoolConfiguration
    private let records: any SessionRecordRepository
    private let credentialStore: @Sendable (TenantName) -> any CredentialStore
    private let clientConfiguration: WhatsAppClientConfiguration
    private let logger: Logger
    private let metrics = PoolMetrics()

    private var sessions: [TenantName: Session] = [:]
    private var remoteLeases: [TenantName: SessionLease] = [:]
    private var subscribers: [TenantName: [UInt64: AsyncStream<SessionStatus>.Continuation]] = [:]
    private var nextSubscriberID: UInt64 = 0
    /// Moves on at every session lifecycle change; `changedAt` holds each tenant's last stamp. A restore decided on
    /// records read before a tenant's last change is dropped (the read may predate a terminal stop).
    private var lifecycle = Epoch()
    private var changedAt: [TenantName: UInt64] = [:]
    private var restoreQueue: [(tenant: TenantName, readAt: UInt64)] = []
    private var restoreQueueHead = 0
    private var restoring: Set<TenantName> = []
    private var unrestorable: Set<TenantName> = []
    private var restoreWorkers = 0
    private var firstScanDone = false
    private var shuttingDown = false
    private var lastRenewal = ContinuousClock.now
    private var maintenance: Task<Void, Never>?

    /// One tenant's session as this node runs it.
    private struct Session {
        let client: WhatsAppClient
        var status: SessionStatus
        var generation: Int64?
        var runner: Task<Void, Never>?
        var listener: Task<Void, Never>?
        var loggedInThisRun = false
        var stopState: SessionState?
        /// Set once the runner decided to stop for good: late events of the ended connection are not applied.
        var ending = false
        var codeExpiry: Task<Void, Never>?
    }

    public init(
        configuration: SessionPoolConfiguration, records: any SessionRecordRepository, clientConfiguration: WhatsAppClientConfiguration,
        credentialStore: @escaping @Sendable (TenantName) -> any CredentialStore, logger: Logger
    ) {
        self.configuration = configuration
        self.records = records
        self.clientConfiguration = clientConfiguration
        self.credentialStore = credentialStore
        self.logger = logger
    }

    /// The node id leases are taken under.
    public nonisolated var nodeID: String { configuration.nodeID }

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
        await withTaskGroup(of: Void.self) { group in
            for tenant in running { group.addTask { await self.stopRunner(tenant, finalState: .stopped) } }
        }
        for tenant in sessions.keys { sessions[tenant]?.listener?.cancel() }
        for continuations in subscribers.values { for continuation in continuations.values { continuation.finish() } }
        subscribers = [:]
    }

    /// True once every session that should run here was given its first connection attempt.
    public var isRestored: Bool { firstScanDone && restoreQueueHead == restoreQueue.count && restoring.isEmpty }

    // MARK: Queries

    /// The session's current status, from this node or, when another node runs it, from that node's lease.
    public func status(of tenant: TenantName) -> SessionStatus {
        if let session = sessions[tenant], session.runner != nil { return session.status }
        if let lease = remoteLeases[tenant], lease.expiresAt > Date() {
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
        nextSubscriberID += 1
        let id = nextSubscriberID
        subscribers[tenant, default: [:]][id] = continuation
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
            $0.qrExpiresAt = Date().addingTimeInterval(lifetime.timeInterval)
            $0.pairingMethod = .code
        }
        sessions[tenant]?.codeExpiry?.cancel()
        sessions[tenant]?.codeExpiry = Task {
            try? await Task.sleep(for: lifetime)
            guard !Task.isCancelled else { return }
            await self.expireLinkCode(tenant)
        }
        return code
    }

    /// The groups the tenant's account is in; the session must be connected on this node.
    public func groups(for tenant: TenantName) async throws(SessionPoolError) -> [SessionGroup] {
        guard let session = sessions[tenant], session.runner != nil else {
            if let owner = liveRemoteOwner(of: tenant) { throw SessionPoolError(.ownedElsewhere, "the session runs on node \(owner)") }
            throw SessionPoolError(.wrongState, "the session is not connected")
        }
        guard session.status.state == .connected else {
            throw SessionPoolError(.wrongState, "the session is not connected (state \(session.status.state.rawValue))")
        }
        do {
            return try await session.client.groups().map { SessionGroup(id: $0.id, subject: $0.subject, participants: $0.participants) }
        } catch let error as WhatsAppClientError where error.isNotConnected {
            throw SessionPoolError(.wrongState, "the session is not connected")
        } catch {
            throw SessionPoolError(.upstreamUnavailable, "group listing failed: \(error)")
        }
    }

    /// Unlinks the companion (when connected), ends the session and wipes its credentials; idempotent from any state.
    public func logout(_ tenant: TenantName) async throws(SessionPoolError) {
        if sessions[tenant]?.runner == nil, let owner = liveRemoteOwner(of: tenant) {
            throw SessionPoolError(.ownedElsewhere, "the session runs on node \(owner)")
        }
        if let session = sessions[tenant], session.runner != nil {
            if await session.client.isLoggedIn {
                do { try await session.client.logout() } catch {
                    logger.warning("logout IQ failed; wiping locally", metadata: ["tenant": "\(tenant)", "error": "\(error)"])
                }
            }
            await stopRunner(tenant, finalState: .loggedOut)
        }
        do {
            try await credentialStore(tenant).wipe()
        } catch {
            throw SessionPoolError(.unavailable, "cannot wipe credentials: \(error)")
        }
        await setDesired(.stopped, for: tenant)
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
        if let continuations = subscribers.removeValue(forKey: tenant) { for continuation in continuations.values { continuation.finish() } }
    }

    // MARK: Runner

    private func ensureEntry(_ tenant: TenantName) {
        guard sessions[tenant] == nil else { return }
        var clientLogger = logger
        clientLogger[metadataKey: "tenant"] = "\(tenant)"
        let client = WhatsAppClient(configuration: clientConfiguration, store: credentialStore(tenant), logger: clientLogger)
        let listener = Task { [weak self] in
            for await event in client.events {
                guard let self else { return }
                await self.apply(event, to: tenant)
            }
        }
        sessions[tenant] = Session(client: client, status: SessionStatus(tenant: tenant, state: .stopped), listener: listener)
        metrics.entered(.stopped)
    }

    private func ensurePairing(_ tenant: TenantName) async throws(SessionPoolError) {
        guard !shuttingDown else { throw SessionPoolError(.unavailable, "shutting down") }
        if let session = sessions[tenant], session.runner != nil {
            if session.status.me == nil, session.status.state == .connecting || session.status.state == .pairing { return }
            throw SessionPoolError(.wrongState, "the session is already paired (state \(session.status.state.rawValue)); log out first")
        }
        if let owner = liveRemoteOwner(of: tenant) { throw SessionPoolError(.ownedElsewhere, "the session runs on node \(owner)") }
        if try await isPaired(tenant) {
            throw SessionPoolError(.wrongState, "the session is already paired; restart it or log out first")
        }
        try await claimAndStart(tenant)
    }

    private func isPaired(_ tenant: TenantName) async throws(SessionPoolError) -> Bool {
        do {
            return try await credentialStore(tenant).load()?.isPaired ?? false
        } catch {
            throw SessionPoolError(.unavailable, "stored credentials cannot be read: \(error)")
        }
    }

    /// Takes the lease and starts the runner. With `readAt` (a restore), only if the tenant's lifecycle has not
    /// changed since the records the decision rests on were read; otherwise the stale decision is dropped.
    private func claimAndStart(_ tenant: TenantName, unchangedSince readAt: UInt64? = nil) async throws(SessionPoolError) {
        let lease: SessionLease?
        do {
            lease = try await records.acquireLease(for: tenant, nodeID: configuration.nodeID, ttl: configuration.leaseTTL, now: Date())
        } catch {
            throw SessionPoolError(.unavailable, "cannot take the session lease: \(error)")
        }
        guard let lease else {
            let owner = (try? await records.leases())?.first { $0.tenant == tenant }?.nodeID ?? "another node"
            throw SessionPoolError(.ownedElsewhere, "the session runs on node \(owner)")
        }
        if let readAt, !isUnchanged(tenant, since: readAt) {
            if sessions[tenant]?.runner == nil { await releaseLease(of: tenant, generation: lease.generation) }
            logger.debug("restore dropped: the session changed since it was queued", metadata: ["tenant": "\(tenant)"])
            return
        }
        ensureEntry(tenant)
        guard var session = sessions[tenant] else { return }
        if session.runner != nil {
            session.generation = lease.generation
            sessions[tenant] = session
            return
        }
        markChanged(tenant)
        session.generation = lease.generation
        session.stopState = nil
        session.ending = false
        unrestorable.remove(tenant)
        let client = session.client
        session.runner = Task { await self.runLoop(tenant, client: client) }
        sessions[tenant] = session
        remoteLeases[tenant] = nil
        update(tenant) {
            $0.state = .connecting
            $0.ownerNode = self.configuration.nodeID
            $0.qr = nil
            $0.pairingMethod = nil
        }
    }

    /// Connect, run, decide: reconnect now (515), back off (drops), or stop (terminal states).
    private func runLoop(_ tenant: TenantName, client: WhatsAppClient) async {
        var attempt = 0
        var generator = SystemRandomNumberGenerator()
        loop: while true {
            sessions[tenant]?.loggedInThisRun = false
            let reason = await client.run()
            if sessions[tenant]?.loggedInThisRun == true { attempt = 0 }
            if let stopState = sessions[tenant]?.stopState {
                update(tenant) { $0.state = stopState }
                break loop
            }
            if Task.isCancelled {
                update(tenant) { $0.state = .stopped }
                break loop
            }
            switch reason.disposition {
            case .reconnectNow:
                metrics.reconnects.increment()
                update(tenant) { $0.state = .connecting }
            case .reconnectWithBackoff:
                guard await client.accountJID != nil else {
                    // An unpaired connection is only worth having while someone pairs: report and stop.
                    metrics.pairings(.failed).increment()
                    update(tenant) {
                        $0.state = .stopped
                        $0.qr = nil
                        $0.pairingMethod = nil
                        $0.lastError = reason.description
                    }
                    break loop
                }
                attempt += 1
                metrics.reconnects.increment()
                let delay = configuration.backoff.delay(attempt: attempt, using: &generator)
                logger.info(
                    "session dropped; reconnecting",
                    metadata: ["tenant": "\(tenant)", "reason": "\(reason)", "attempt": "\(attempt)", "delay_ms": "\(delay.wholeMilliseconds)"])
                update(tenant) {
                    $0.state = .reconnecting
                    $0.lastError = reason.description
                }
                do { try await Task.sleep(for: delay) } catch {
                    update(tenant) { $0.state = .stopped }
                    break loop
                }
                update(tenant) { $0.state = .connecting }
            case .stop:
                sessions[tenant]?.ending = true
                let state: SessionState
                switch reason {
                case .requested: state = .stopped
                case .pairingTimedOut:
                    state = .stopped
                    metrics.pairings(.timedOut).increment()
                case .replaced: state = .replaced
                default: state = .failed
                }
                if state.isTerminal {
                    logger.warning("session stopped for good", metadata: ["tenant": "\(tenant)", "reason": "\(reason)"])
                    await setDesired(.stopped, for: tenant)
                }
                update(tenant) {
                    $0.state = state
                    $0.qr = nil
                    $0.pairingMethod = nil
                    $0.lastError = reason == .requested ? $0.lastError : reason.description
                }
                break loop
            case .stopAndWipeCredentials:
                sessions[tenant]?.ending = true
                logger.warning("session logged out; wiping credentials", metadata: ["tenant": "\(tenant)", "reason": "\(reason)"])
                do { try await credentialStore(tenant).wipe() } catch {
                    logger.error("credential wipe failed", metadata: ["tenant": "\(tenant)", "error": "\(error)"])
                }
                await setDesired(.stopped, for: tenant)
                update(tenant) {
                    $0.state = .loggedOut
                    $0.me = nil
                    $0.qr = nil
                    $0.pairingMethod = nil
                    $0.lastError = reason.description
                }
                break loop
            }
        }
        await runnerEnded(tenant)
    }

    private func runnerEnded(_ tenant: TenantName) async {
        guard var session = sessions[tenant] else { return }
        markChanged(tenant)
        session.runner = nil
        session.codeExpiry?.cancel()
        session.codeExpiry = nil
        let generation = session.generation
        session.generation = nil
        sessions[tenant] = session
        update(tenant) { $0.ownerNode = nil }
        if let generation { await releaseLease(of: tenant, generation: generation) }
    }

    private func releaseLease(of tenant: TenantName, generation: Int64) async {
        // The caller may be ending because it was cancelled; the release must still reach the database.
        let (records, nodeID, logger) = (self.records, configuration.nodeID, self.logger)
        await Task {
            do { try await records.releaseLease(for: tenant, nodeID: nodeID, generation: generation) } catch {
                logger.warning("lease release failed; it will expire", metadata: ["tenant": "\(tenant)", "error": "\(error)"])
            }
        }.value
    }

    /// Records a lifecycle change of `tenant`: restores decided on records read before it are dropped.
    private func markChanged(_ tenant: TenantName) {
        changedAt[tenant] = lifecycle.advance()
    }

    private func isUnchanged(_ tenant: TenantName, since readAt: UInt64) -> Bool {
        (changedAt[tenant] ?? 0) <= readAt
    }

    /// Ends the runner (if any) and waits for it; the session ends in `finalState`.
    private func stopRunner(_ tenant: TenantName, finalState: SessionState) async {
        guard let session = sessions[tenant], let runner = session.runner else { return }
        sessions[tenant]?.stopState = finalState
        runner.cancel()
        await session.client.disconnect()
        await runner.value
        sessions[tenant]?.stopState = nil
    }

    private func expireLinkCode(_ tenant: TenantName) async {
        guard let session = sessions[tenant], session.runner != nil, session.status.pairingMethod == .code,
            session.status.state == .pairing
        else { return }
        metrics.pairings(.timedOut).increment()
        await stopRunner(tenant, finalState: .stopped)
        update(tenant) {
            $0.pairingMethod = nil
            $0.qrExpiresAt = nil
            $0.lastError = "the link code was not entered in time"
        }
    }

    private func apply(_ event: WhatsAppEvent, to tenant: TenantName) async {
        guard let session = sessions[tenant], session.runner != nil, !session.ending else { return }
        switch event {
        case .qrCode(let text, let lifetime):
            guard sessions[tenant]?.status.pairingMethod != .code else { return }
            update(tenant) {
                $0.state = .pairing
                $0.qr = text
                $0.qrExpiresAt = Date().addingTimeInterval(lifetime.timeInterval)
                $0.pairingMethod = .qr
            }
        case .paired(let jid):
            metrics.pairings(.succeeded).increment()
            logger.info("paired", metadata: ["tenant": "\(tenant)", "jid": "\(jid)"])
            sessions[tenant]?.codeExpiry?.cancel()
            update(tenant) {
                $0.me = jid
                $0.qr = nil
                $0.qrExpiresAt = nil
                $0.pairingMethod = nil
                $0.state = .connecting
            }
            await setDesired(.running, for: tenant)
        case .loggedIn(let jid):
            sessions[tenant]?.loggedInThisRun = true
            update(tenant) {
                $0.state = .connected
                $0.me = jid
                $0.qr = nil
                $0.qrExpiresAt = nil
                $0.pairingMethod = nil
                $0.lastError = nil
            }
        case .disconnected:
            break
        }
    }

    // MARK: Status fan-out

    private func update(_ tenant: TenantName, _ change: (inout SessionStatus) -> Void) {
        guard var session = sessions[tenant] else { return }
        let old = session.status
        change(&session.status)
        guard session.status != old else { return }
        sessions[tenant] = session
        if old.state != session.status.state {
            metrics.left(old.state)
            metrics.entered(session.status.state)
        }
        if let continuations = subscribers[tenant] {
            for continuation in continuations.values { continuation.yield(session.status) }
        }
    }

    private func unsubscribe(_ tenant: TenantName, _ id: UInt64) {
        subscribers[tenant]?[id] = nil
        if subscribers[tenant]?.isEmpty == true { subscribers[tenant] = nil }
    }

    /// The first status (current or coming) that satisfies `predicate`, or the last one seen when `timeout` passes.
    private func waitForStatus(
        of tenant: TenantName, timeout: Duration, _ predicate: @escaping @Sendable (SessionStatus) -> Bool
    ) async -> SessionStatus? {
        let stream = updates(of: tenant)
        let latest = LatestStatus()
        return await withTaskGroup(of: SessionStatus?.self) { group in
            group.addTask {
                for await status in stream {
                    latest.set(status)
                    if predicate(status) { return status }
                }
                return nil
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first ?? latest.value
        }
    }

    // MARK: Leases, restore, takeover

    private func maintenanceLoop() async {
        while !Task.isCancelled {
            await heartbeat()
            await scan()
            do { try await Task.sleep(for: configuration.heartbeatInterval) } catch { return }
        }
    }

    /// Renews every lease this node holds in one batched write; stops sessions whose lease was lost.
    private func heartbeat() async {
        let beats = sessions.compactMap { tenant, session in
            session.generation.map {
                LeaseBeat(tenant: tenant, generation: $0, state: session.status.state.rawValue, lastError: session.status.lastError)
            }
        }
        guard !beats.isEmpty else {
            lastRenewal = .now
            return
        }
        do {
            let lost = try await records.renewLeases(beats, nodeID: configuration.nodeID, ttl: configuration.leaseTTL, now: Date())
            lastRenewal = .now
            for tenant in lost where sessions[tenant]?.generation != nil {
                logger.warning("lease lost to another node; disconnecting", metadata: ["tenant": "\(tenant)"])
                sessions[tenant]?.generation = nil
                await stopRunner(tenant, finalState: .stopped)
            }
        } catch {
            logger.error("lease renewal failed", metadata: ["error": "\(error)", "sessions": "\(beats.count)"])
            // Fence before the leases can expire: another node may take them over, so stop connecting here.
            guard ContinuousClock.now - lastRenewal > configuration.leaseTTL * 2 / 3 else { return }
            for tenant in sessions.keys where sessions[tenant]?.runner != nil {
                sessions[tenant]?.generation = nil
                await stopRunner(tenant, finalState: .stopped)
                update(tenant) { $0.lastError = "lease renewal failing; the database is unreachable" }
            }
        }
    }

    /// Queues every session that should run and that no live node holds: restore on start, takeover afterwards.
    private func scan() async {
        guard !shuttingDown else { return }
        let readAt = lifecycle.current
        let desired: [TenantName: DesiredSessionState]
        let leases: [SessionLease]
        do {
            desired = try await records.desiredStates()
            leases = try await records.leases()
        } catch {
            logger.error("cannot read session records", metadata: ["error": "\(error)"])
            return
        }
        let now = Date()
        var others: [TenantName: SessionLease] = [:]
        for lease in leases where lease.nodeID != configuration.nodeID { others[lease.tenant] = lease }
        remoteLeases = others
        var queued = 0
        for (tenant, state) in desired where state == .running {
            if sessions[tenant]?.runner != nil || restoring.contains(tenant) || unrestorable.contains(tenant) { continue }
            if !isUnchanged(tenant, since: readAt) { continue }
            if let lease = others[tenant], lease.expiresAt > now { continue }
            restoring.insert(tenant)
            restoreQueue.append((tenant, readAt))
            queued += 1
        }
        if queued > 0 {
            logger.info("restoring sessions", metadata: ["count": "\(queued)", "first_scan": "\(!firstScanDone)"])
        }
        firstScanDone = true
        metrics.restorePending.record(restoreQueue.count - restoreQueueHead)
        while restoreWorkers < configuration.restoreConcurrency, restoreQueueHead < restoreQueue.count {
            restoreWorkers += 1
            Task { await self.restoreWorker() }
        }
    }

    private func nextQueuedRestore() -> (tenant: TenantName, readAt: UInt64)? {
        guard restoreQueueHead < restoreQueue.count, !shuttingDown else {
            restoreQueue.removeAll()
            restoreQueueHead = 0
            return nil
        }
        defer {
            restoreQueueHead += 1
            metrics.restorePending.record(restoreQueue.count - restoreQueueHead)
        }
        return restoreQueue[restoreQueueHead]
    }

    private func restoreWorker() async {
        var generator = SystemRandomNumberGenerator()
        while let (tenant, readAt) = nextQueuedRestore() {
            let jitter = configuration.restoreJitter.wholeMilliseconds
            if jitter > 0 { try? await Task.sleep(for: .milliseconds(Int64.random(in: 0...jitter, using: &generator))) }
            await restore(tenant, decidedOn: readAt)
            restoring.remove(tenant)
        }
        restoreWorkers -= 1
        if isRestored { logger.info("session restore finished", metadata: ["running": "\(sessions.values.filter { $0.runner != nil }.count)"]) }
    }

    /// Connects one stored session and waits for its first attempt to end (connected or not); `readAt` is when the
    /// records that queued it were read, and the restore is dropped if the session changed since.
    private func restore(_ tenant: TenantName, decidedOn readAt: UInt64) async {
        guard !shuttingDown, sessions[tenant]?.runner == nil, isUnchanged(tenant, since: readAt) else { return }
        do {
            guard try await isPaired(tenant) else {
                // Left as desired (another node sharing the data directory may still see the files); not retried until
                // an operator restarts or re-pairs the session.
                logger.warning("session marked running has no paired credentials here; not restoring it", metadata: ["tenant": "\(tenant)"])
                unrestorable.insert(tenant)
                return
            }
            try await claimAndStart(tenant, unchangedSince: readAt)
        } catch {
            if error.kind != .ownedElsewhere { logger.warning("restore failed", metadata: ["tenant": "\(tenant)", "error": "\(error)"]) }
            return
        }
        _ = await waitForStatus(of: tenant, timeout: configuration.leaseTTL) { $0.state != .connecting }
    }

    private func liveRemoteOwner(of tenant: TenantName) -> String? {
        guard let lease = remoteLeases[tenant], lease.expiresAt > Date() else { return nil }
        return lease.nodeID
    }

    /// Records the desired state, then marks the change: a scan that read the old value is not acted on.
    private func setDesired(_ state: DesiredSessionState, for tenant: TenantName) async {
        // The caller may be a runner being cancelled (a terminal stop racing a shutdown); the write must still land,
        // or a `replaced` session would be restored on the next start.
        let (records, logger) = (self.records, self.logger)
        await Task {
            do { try await records.setDesiredState(state, for: tenant) } catch {
                logger.error("cannot record desired session state", metadata: ["tenant": "\(tenant)", "error": "\(error)"])
            }
        }.value
        markChanged(tenant)
    }
}

/// The last status a waiter saw, shared between its two child tasks.
private final class LatestStatus: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: SessionStatus?
    func set(_ value: SessionStatus) { lock.withLock { stored = value } }
    var value: SessionStatus? { lock.withLock { stored } }
}

/// The pool's metrics: sessions per state, reconnects, pairing outcomes, restore backlog.
struct PoolMetrics: Sendable {
    enum PairingOutcome: String { case succeeded, timedOut = "timed_out", failed }

    let reconnects = Counter(label: "wahost_session_reconnects_total")
    let restorePending = Gauge(label: "wahost_sessions_restore_pending")
    private let counts = StateCounts()

    func pairings(_ outcome: PairingOutcome) -> Counter {
        Counter(label: "wahost_pairings_total", dimensions: [("result", outcome.rawValue)])
    }

    func entered(_ state: SessionState) { record(state, counts.add(state, 1)) }
    func left(_ state: SessionState) { record(state, counts.add(state, -1)) }

    private func record(_ state: SessionState, _ count: Int) {
        Gauge(label: "wahost_sessions", dimensions: [("state", state.rawValue)]).record(count)
    }
}

/// Sessions per state, for the gauge.
private final class StateCounts: @unchecked Sendable {
    private let lock = NSLock()
    private var counts: [SessionState: Int] = [:]
    func add(_ state: SessionState, _ delta: Int) -> Int {
        lock.withLock {
            counts[state, default: 0] += delta
            return counts[state]!
        }
    }
}

extension Duration {
    /// Seconds as a `TimeInterval`.
    var timeInterval: TimeInterval {
        let parts = components
        return TimeInterval(parts.seconds) + TimeInterval(parts.attoseconds) / 1e18
    }
}
