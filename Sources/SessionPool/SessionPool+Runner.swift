import Foundation
import Logging
import Metrics
import Tenancy
import WhatsApp
import WahostBasics

extension SessionPool {
    func ensureEntry(_ tenant: TenantName) {
        guard sessions[tenant] == nil else { return }
        var clientLogger = logger
        clientLogger[metadataKey: "tenant"] = "\(tenant)"
        let messaging = eventLog.flatMap { log in signalStore.map { ClientMessaging(signalStore: $0(tenant), inbox: EventLogInbox(tenant: tenant, log: log)) } }
        let client = WhatsAppClient(
            configuration: clientConfiguration, store: credentialStore(tenant), messaging: messaging,
            pairingAccepted: { [weak self] in await self?.setDesired(.running, for: tenant) }, logger: clientLogger)
        let listener = Task { [weak self] in
            for await event in client.events {
                guard let self else { return }
                await self.apply(event, to: tenant)
            }
        }
        sessions[tenant] = Session(client: client, status: SessionStatus(tenant: tenant, state: .stopped), listener: listener)
        metrics.entered(.stopped)
    }

    func ensurePairing(_ tenant: TenantName) async throws(SessionPoolError) {
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

    func isPaired(_ tenant: TenantName) async throws(SessionPoolError) -> Bool {
        do {
            return try await credentialStore(tenant).load()?.isPaired ?? false
        } catch {
            throw SessionPoolError(.unavailable, "stored credentials cannot be read: \(error)")
        }
    }

    /// Takes the lease and starts the runner. With `readAt` (a restore), only if the tenant's lifecycle has not
    /// changed since the records the decision rests on were read; otherwise the stale decision is dropped.
    func claimAndStart(_ tenant: TenantName, unchangedSince readAt: UInt64? = nil) async throws(SessionPoolError) {
        if let readAt, !admitsRestore(tenant, decidedAt: readAt) { return }
        guard !draining else { throw SessionPoolError(.unavailable, "this node is draining; another node takes new sessions (retry)") }
        let lease: SessionLease?
        claimsInFlight[tenant, default: 0] += 1
        do {
            lease = try await records.acquireLease(for: tenant, nodeID: configuration.nodeID, ttl: configuration.leaseTTL, now: configuration.clock.now())
            claimsInFlight[tenant, default: 1] -= 1
        } catch {
            claimsInFlight[tenant, default: 1] -= 1
            throw SessionPoolError(.unavailable, "cannot take the session lease: \(error)")
        }
        if claimsInFlight[tenant] == 0 { claimsInFlight[tenant] = nil }
        guard let lease else {
            let held = (try? await records.leases())?.first { $0.tenant == tenant }
            // Known at once, not at the next scan: the next request for the tenant is forwarded to the holder.
            if let held, held.nodeID != configuration.nodeID, sessions[tenant]?.runner == nil { remoteLeases[tenant] = held }
            throw SessionPoolError(.ownedElsewhere, "the session runs on node \(held?.nodeID ?? "another node")")
        }
        if shuttingDown || draining {
            // The node began to stop (or drain) while the lease was being taken: hand the session straight on.
            await releaseLease(of: tenant, generation: lease.generation, handOver: true)
            throw SessionPoolError(.unavailable, "this node is stopping; another node takes the session (retry)")
        }
        if let readAt, !admitsRestore(tenant, decidedAt: readAt) {
            // Another claim (a restart) may hold the same lease row and generation: leave it to that claim then.
            if sessions[tenant]?.runner == nil, claimsInFlight[tenant] == nil { await releaseLease(of: tenant, generation: lease.generation) }
            logger.debug("restore dropped: the session changed since it was queued", metadata: ["tenant": "\(tenant)"])
            return
        }
        ensureEntry(tenant)
        guard var session = sessions[tenant] else { return }
        leaseFences?.tookLease(of: tenant, nodeID: configuration.nodeID, generation: lease.generation)
        if session.runner != nil {
            session.generation = lease.generation
            sessions[tenant] = session
            return
        }
        markChanged(tenant)
        logger.debug("took the session's lease", metadata: ["tenant": "\(tenant)", "generation": "\(lease.generation)"])
        session.generation = lease.generation
        let actions = session.lifecycle.started(on: configuration.nodeID, status: session.status)
        restoreQueue.clearUnrestorable(tenant)
        let client = session.client
        // Detached: a runner started inside a request or the pool's service task would inherit its graceful shutdown,
        // on which the WebSocket closes itself; the pool alone decides when a session stops (and hands it over then).
        session.runner = Task.detached { await self.runLoop(tenant, client: client) }
        sessions[tenant] = session
        remoteLeases[tenant] = nil
        for action in actions { await perform(action, for: tenant) }
    }

    /// Connect, run, decide (`SessionLifecycle`): reconnect now (515), back off (drops), or stop (terminal states).
    func runLoop(_ tenant: TenantName, client: WhatsAppClient) async {
        // The runner task keeps its deepest frames for the session's life: the work is in the functions called here.
        var generator = SystemRandomNumberGenerator()
        var reconnecting = false
        loop: while true {
            if reconnecting, await !leaseHeldForReconnect(tenant) { break }
            reconnecting = true
            sessions[tenant]?.lifecycle.connecting()
            let reason = await client.run()
            let paired = await client.accountJID != nil
            guard let actions = connectionEnded(tenant, reason: reason, paired: paired) else { break }
            for action in actions {
                if case .backOff(let attempt) = action {
                    guard await backOff(tenant, attempt: attempt, after: reason, using: &generator) else { break loop }
                } else if await perform(action, for: tenant) == .end {
                    break loop
                }
            }
        }
        await runnerEnded(tenant)
    }

    /// What `tenant`'s lifecycle makes of the end of its connection; nil when the session is gone.
    @inline(never)
    private func connectionEnded(_ tenant: TenantName, reason: DisconnectReason, paired: Bool) -> [SessionLifecycle.Action]? {
        guard var session = sessions[tenant] else { return nil }
        let actions = session.lifecycle.connectionEnded(reason, paired: paired, cancelled: Task.isCancelled, status: session.status)
        sessions[tenant] = session
        return actions
    }

    /// Waits out a backoff and carries out what the lifecycle does after it; false when the runner ends.
    @inline(never)
    private func backOff(
        _ tenant: TenantName, attempt: Int, after reason: DisconnectReason, using generator: inout SystemRandomNumberGenerator
    ) async -> Bool {
        let delay = configuration.backoff.delay(attempt: attempt, using: &generator)
        logger.info(
            "session dropped; reconnecting",
            metadata: ["tenant": "\(tenant)", "reason": "\(reason)", "attempt": "\(attempt)", "delay_ms": "\(delay.wholeMilliseconds)"])
        let cancelled: Bool
        do {
            try await configuration.clock.sleep(delay)
            cancelled = false
        } catch { cancelled = true }
        guard let status = sessions[tenant]?.status, let after = sessions[tenant]?.lifecycle.backoffEnded(cancelled: cancelled, status: status)
        else { return false }
        for action in after where await perform(action, for: tenant) == .end { return false }
        return true
    }

    /// Carries out one lifecycle action; returns it so the caller sees `.end`.
    @discardableResult
    func perform(_ action: SessionLifecycle.Action, for tenant: TenantName) async -> SessionLifecycle.Action {
        // Runner and listener tasks keep their deepest frames for their lifetime: only what waits is in this frame.
        switch action {
        case .recordDesired(let state): await setDesired(state, for: tenant)
        case .wipeCredentials: await wipeCredentials(of: tenant)
        default: carryOut(action, for: tenant)
        }
        return action
    }

    /// Carries out a lifecycle action that does not wait: a status, a metric, a log line, the link-code timer.
    @inline(never)
    private func carryOut(_ action: SessionLifecycle.Action, for tenant: TenantName) {
        switch action {
        case .reconnectNow, .backOff, .end, .recordDesired, .wipeCredentials: break
        case .publish(let status): update(tenant) { $0 = status }
        case .countReconnect: metrics.reconnects.increment()
        case .countPairing(let outcome): metrics.pairings(outcome).increment()
        case .logStoppedForGood(let reason):
            logger.warning("session stopped for good", metadata: ["tenant": "\(tenant)", "reason": "\(reason)"])
        case .logLoggedOut(let reason):
            logger.warning("session logged out; wiping credentials", metadata: ["tenant": "\(tenant)", "reason": "\(reason)"])
        case .logPaired(let jid): logger.info("paired", metadata: ["tenant": "\(tenant)", "jid": "\(jid)"])
        case .cancelCodeExpiry:
            sessions[tenant]?.codeExpiry?.cancel()
            sessions[tenant]?.codeExpiry = nil
        }
    }

    /// Wipes `tenant`'s stored credentials; a failure is logged.
    private func wipeCredentials(of tenant: TenantName) async {
        do { try await credentialStore(tenant).wipe() } catch {
            logger.error("credential wipe failed", metadata: ["tenant": "\(tenant)", "error": "\(error)"])
        }
    }

    func runnerEnded(_ tenant: TenantName) async {
        guard var session = sessions[tenant] else { return }
        markChanged(tenant)
        session.runner = nil
        let actions = session.lifecycle.runnerEnded(status: session.status)
        let generation = session.generation
        session.generation = nil
        sessions[tenant] = session
        for action in actions { await perform(action, for: tenant) }
        // A session stopped by a shutdown, drain or balance is handed over: another node takes it at once.
        let handOver = handingOver.remove(tenant) != nil || shuttingDown
        if let generation { await releaseLease(of: tenant, generation: generation, handOver: handOver) }
    }

    func releaseLease(of tenant: TenantName, generation: Int64, handOver: Bool = false) async {
        // The caller may be ending because it was cancelled; the release must still reach the database.
        let (records, nodeID, logger) = (self.records, configuration.nodeID, self.logger)
        await completing {
            do { try await records.releaseLease(for: tenant, nodeID: nodeID, generation: generation, handOver: handOver) } catch {
                logger.warning("lease release failed; it will expire", metadata: ["tenant": "\(tenant)", "error": "\(error)"])
            }
        }
    }

    /// Records a lifecycle change of `tenant`: restores decided on records read before it are dropped.
    func markChanged(_ tenant: TenantName) {
        changedAt[tenant] = lifecycleEpoch.advance()
    }

    /// Whether a restore decided on records read at `readAt` may start `tenant`'s runner now.
    func admitsRestore(_ tenant: TenantName, decidedAt readAt: UInt64) -> Bool {
        !operatorBusy.contains(tenant)
            && (sessions[tenant]?.lifecycle ?? SessionLifecycle()).admitsRestore(decidedAt: readAt, lastChange: changedAt[tenant] ?? 0)
    }

    /// Ends the runner (if any) and waits for it; the session ends in `finalState`, or as it was when nil (the caller
    /// publishes the end once what it promises is done).
    func stopRunner(_ tenant: TenantName, finalState: SessionState?, leaseLost: Bool = false) async {
        guard let session = sessions[tenant], let runner = session.runner else { return }
        sessions[tenant]?.lifecycle.stopRequested(finalState, leaseLost: leaseLost)
        runner.cancel()
        await session.client.disconnect()
        await runner.value
        sessions[tenant]?.lifecycle.stopCompleted()
    }

    func expireLinkCode(_ tenant: TenantName) async {
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

    func apply(_ event: WhatsAppEvent, to tenant: TenantName) async {
        for action in lifecycleActions(for: event, of: tenant) { await perform(action, for: tenant) }
    }

    /// What `tenant`'s lifecycle makes of a client event.
    @inline(never)
    private func lifecycleActions(for event: WhatsAppEvent, of tenant: TenantName) -> [SessionLifecycle.Action] {
        guard var session = sessions[tenant] else { return [] }
        let actions = session.lifecycle.clientEvent(event, status: session.status, now: configuration.clock.now())
        sessions[tenant] = session
        return actions
    }
}
