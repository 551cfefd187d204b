import Foundation
import Logging
import Metrics
import Tenancy
import WhatsApp
import WahostBasics

extension SessionPool {
    // MARK: Leases, restore, takeover

    func maintenanceLoop() async {
        let handovers = records.leaseHandovers().map { stream in Task { [weak self] in for await _ in stream { await self?.handoverNoticed() } } }
        defer { handovers?.cancel() }
        while !Task.isCancelled {
            await heartbeat()
            await scan()
            await balance(now: configuration.clock.now())
            do { try await configuration.clock.sleep(configuration.heartbeatInterval) } catch { return }
        }
    }

    /// Renews every lease this node holds in one batched write; stops sessions whose lease was lost.
    func heartbeat() async {
        // The node's row after the renewal: a slow database must not delay the renewal (or its fence below).
        defer { Task { await self.beatNode() } }
        let beats = sessions.compactMap { tenant, session in
            session.generation.map {
                LeaseBeat(tenant: tenant, generation: $0, state: session.status.state.rawValue, lastError: session.status.lastError)
            }
        }
        guard !beats.isEmpty else {
            lastRenewal = configuration.clock.now()
            return
        }
        do {
            // The leases run from the time sent, not the answer's: a node paused while the call was under way must not
            // count a lease as fresh that another node may have taken meanwhile.
            let sentAt = configuration.clock.now()
            let lost = try await records.renewLeases(beats, nodeID: configuration.nodeID, ttl: configuration.leaseTTL, now: sentAt)
            lastRenewal = sentAt
            for tenant in lost where sessions[tenant]?.generation != nil {
                logger.warning("lease lost to another node; disconnecting", metadata: ["tenant": "\(tenant)"])
                sessions[tenant]?.generation = nil
                await stopRunner(tenant, finalState: .stopped, leaseLost: true)
            }
        } catch {
            logger.storageFailure("lease renewal failed", error, level: .error, metadata: ["sessions": "\(beats.count)"])
            // Fence before the leases can expire: another node may take them over, so stop connecting here.
            guard configuration.clock.now().timeIntervalSince(lastRenewal) > (configuration.leaseTTL * 2 / 3).timeInterval else { return }
            for tenant in sessions.keys where sessions[tenant]?.runner != nil {
                sessions[tenant]?.generation = nil
                await stopRunner(tenant, finalState: .stopped)
                update(tenant) { $0.lastError = "lease renewal failing; the database is unreachable" }
            }
        }
    }

    /// Before a reconnect: true once `tenant`'s lease is known held (renewed within two thirds of the TTL, or now);
    /// false when it is lost (the session ends stopped). A node resumed after a pause must not connect on a lease
    /// another node may have taken while it was stopped. A stop meanwhile is left to the connection's end, as before.
    func leaseHeldForReconnect(_ tenant: TenantName) async -> Bool {
        let freshFor = (configuration.leaseTTL * 2 / 3).timeInterval
        // Counted from when a renewal was sent: one that answered after a pause proves nothing about now.
        var renewedAt = lastRenewal
        while configuration.clock.now().timeIntervalSince(max(renewedAt, lastRenewal)) > freshFor {
            guard let generation = sessions[tenant]?.generation, let status = sessions[tenant]?.status, !Task.isCancelled else { break }
            let beat = LeaseBeat(tenant: tenant, generation: generation, state: status.state.rawValue, lastError: status.lastError)
            do {
                let sentAt = configuration.clock.now()
                let lost = try await records.renewLeases([beat], nodeID: configuration.nodeID, ttl: configuration.leaseTTL, now: sentAt)
                if lost.isEmpty {
                    renewedAt = sentAt
                    continue
                }
                logger.warning("lease lost to another node; not reconnecting", metadata: ["tenant": "\(tenant)"])
                if sessions[tenant]?.generation == generation { sessions[tenant]?.generation = nil }
            } catch {
                // While renewals fail the heartbeat fences every session; wait for it, or for a renewal that works.
                do { try await configuration.clock.sleep(configuration.heartbeatInterval) } catch { break }
            }
        }
        guard let session = sessions[tenant] else { return false }
        if session.generation != nil || Task.isCancelled { return true }
        for action in sessions[tenant]?.lifecycle.endedBeforeReconnect(status: session.status) ?? [] { await perform(action, for: tenant) }
        return false
    }

    /// Another node handed a session over: scan soon (once for a burst of handovers) instead of at the next heartbeat.
    func handoverNoticed() {
        guard !handoverScanPending, !shuttingDown else { return }
        handoverScanPending = true
        Task {
            try? await configuration.clock.sleep(.milliseconds(200))
            await self.handoverScan()
        }
    }

    private func handoverScan() async {
        handoverScanPending = false
        await scan()
    }

    /// Queues every session that should run and that no live node holds: restore on start, takeover afterwards.
    func scan() async {
        guard !shuttingDown else { return }
        let readAt = lifecycleEpoch.current
        let desired: [TenantName: DesiredSessionState]
        let leases: [SessionLease]
        do {
            desired = try await records.desiredStates()
            leases = try await records.leases()
        } catch {
            logger.storageFailure("cannot read session records", error, level: .error)
            return
        }
        // The node rows with the leases, not the heartbeat's copy: every node decides on the same snapshot (a handing
        // node marked itself draining just before; a node just started or resumed has no fresh copy), and this node
        // follows its own drain request before deciding what to take (others may already hand it its share).
        await refreshClusterNodes()
        followDrainRequest()
        let now = configuration.clock.now()
        let declined = declinedHandovers(leases: leases, now: now)
        let (others, queued) = restoreQueue.plan(
            desired: desired, leases: leases, nodeID: configuration.nodeID, now: now, readAt: readAt,
            admits: { !draining && !declined.contains($0) && admitsRestore($0, decidedAt: readAt) })
        remoteLeases = others
        if queued > 0 {
            logger.info("restoring sessions", metadata: ["count": "\(queued)", "first_scan": "\(!firstScanDone)"])
        }
        firstScanDone = true
        metrics.restorePending.record(restoreQueue.pendingCount)
        while restoreWorkers < configuration.restoreConcurrency, restoreQueue.pendingCount > 0 {
            restoreWorkers += 1
            Task { await self.restoreWorker() }
        }
    }

    func nextQueuedRestore() -> RestoreQueue.Entry? {
        defer { metrics.restorePending.record(restoreQueue.pendingCount) }
        return restoreQueue.next(stopping: shuttingDown)
    }

    func restoreWorker() async {
        var generator = SystemRandomNumberGenerator()
        while let entry = nextQueuedRestore() {
            let jitter = configuration.restoreJitter.wholeMilliseconds
            if jitter > 0 { try? await configuration.clock.sleep(.milliseconds(Int64.random(in: 0...jitter, using: &generator))) }
            await restore(entry.tenant, decidedOn: entry.readAt)
            restoreQueue.finished(entry.tenant)
        }
        restoreWorkers -= 1
        if restoreWorkers == 0 {
            for waiter in restoreWorkersIdle { waiter.resume() }
            restoreWorkersIdle = []
        }
        if isRestored, !shuttingDown { logger.info("session restore finished", metadata: ["running": "\(sessions.values.filter { $0.runner != nil }.count)"]) }
    }

    /// Connects one stored session and waits for its first attempt to end (connected or not); `readAt` is when the
    /// records that queued it were read, and the restore is dropped if the session changed since.
    func restore(_ tenant: TenantName, decidedOn readAt: UInt64) async {
        guard !shuttingDown, admitsRestore(tenant, decidedAt: readAt) else { return }
        do {
            guard try await isPaired(tenant) else {
                // Left as desired (another node sharing the data directory may still see the files); not retried until
                // an operator restarts or re-pairs the session.
                logger.warning("session marked running has no paired credentials here; not restoring it", metadata: ["tenant": "\(tenant)"])
                restoreQueue.markUnrestorable(tenant)
                return
            }
            arriving.insert(tenant)
            try await claimAndStart(tenant, unchangedSince: readAt)
        } catch {
            arriving.remove(tenant)
            if error.kind != .ownedElsewhere { logger.storageFailure("restore failed", error, metadata: ["tenant": "\(tenant)"]) }
            return
        }
        _ = await waitForStatus(of: tenant, timeout: configuration.leaseTTL) { $0.state != .connecting }
        arriving.remove(tenant)
    }

    func liveRemoteOwner(of tenant: TenantName) -> String? {
        guard let lease = remoteLeases[tenant], lease.expiresAt > configuration.clock.now() else { return nil }
        return lease.nodeID
    }

    /// Records the desired state, then marks the change: a scan that read the old value is not acted on.
    func setDesired(_ state: DesiredSessionState, for tenant: TenantName) async {
        // The caller may be a runner being cancelled (a terminal stop racing a shutdown); the write must still land,
        // or a `replaced` session would be restored on the next start.
        let (records, logger) = (self.records, self.logger)
        // Refused once another node holds a live lease: a node that was frozen past its lease hears `replaced` from
        // WhatsApp when the taker logs in, and must not stop the session the taker now runs.
        let fence = LeaseFence.noOtherLiveHolder(nodeID: configuration.nodeID, now: configuration.clock.now())
        await completing {
            do { try await records.setDesiredState(state, for: tenant, fence: fence) } catch {
                if (error as? RepositoryError)?.kind == .fenced {
                    logger.notice("another node runs the session now; its desired state is that node's", metadata: ["tenant": "\(tenant)"])
                } else {
                    logger.error("cannot record desired session state", metadata: ["tenant": "\(tenant)", "error": "\(error)"])
                }
            }
        }
        markChanged(tenant)
    }

    /// Runs `work` in a task of its own and waits for it: cancelling the caller cannot cut a record write short.
    func completing(_ work: @escaping @Sendable () async -> Void) async {
        await Task { await work() }.value
    }
}
