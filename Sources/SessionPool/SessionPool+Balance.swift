import Foundation
import Logging
import Tenancy
import WahostBasics

extension SessionPool {
    // MARK: Drain and balance

    /// A handed-over session waits this long for the node it was assigned to; then any node may take it.
    var handoverGrace: TimeInterval { (configuration.heartbeatInterval * 2).timeInterval }

    /// The spread of live sessions over the nodes that take sessions, as this node last read it; nil outside a cluster.
    func clusterBalance(leases: [SessionLease], now: Date) -> (balance: ClusterBalance, homeless: [SessionLease])? {
        let ttl = configuration.leaseTTL.timeInterval
        let taking = clusterNodes.values.filter { now.timeIntervalSince($0.lastBeatAt) < ttl && !$0.drainRequested }.map(\.nodeID)
        guard !taking.isEmpty else { return nil }
        var loads = Dictionary(uniqueKeysWithValues: taking.map { ($0, 0) })
        for lease in leases where lease.expiresAt > now && loads[lease.nodeID] != nil { loads[lease.nodeID]! += 1 }
        let homeless = leases.filter { $0.state == handedOverLeaseState && $0.expiresAt <= now && now.timeIntervalSince($0.lastBeatAt) < handoverGrace }
        return (ClusterBalance(loads: loads, homeless: homeless.count), homeless)
    }

    /// Sessions this scan must leave to other nodes: recent handovers assigned elsewhere, and all of them while draining.
    /// The node that released a session is not given it back; every node reads that from the row, so all assign alike
    /// (a node excluding itself for an earlier handover of its own, which the others cannot know, left a session
    /// assigned to it on no node until the grace ran out).
    func declinedHandovers(leases: [SessionLease], now: Date) -> Set<TenantName> {
        guard let (balance, homeless) = clusterBalance(leases: leases, now: now) else { return [] }
        let excluding = Dictionary(homeless.map { ($0.tenant, Set([$0.nodeID])) }, uniquingKeysWith: { $1 })
        let assignment = balance.assign(homeless.map(\.tenant), excluding: excluding)
        return Set(homeless.map(\.tenant).filter { draining || assignment[$0] != configuration.nodeID })
    }

    /// After each scan: follows this node's drain request, and hands sessions beyond its fair share over, a
    /// bounded number per minute.
    func balance(now: Date) async {
        guard !shuttingDown, clusterNodes[configuration.nodeID] != nil else { return }
        followDrainRequest()
        let running = sessions.filter { $0.value.runner != nil && $0.value.generation != nil }.map(\.key)
        guard !handingOverInProgress else { return }
        if draining {
            // A pairing stays until it ends (its QR or code belongs to this node); everything else moves now.
            startHandOver(running.filter { sessions[$0]?.status.state != .pairing }, now: now)
            return
        }
        // Earlier handovers not taken yet: wait for them, or the balance would count them as this node's deficit.
        guard !handedOverAt.contains(where: { now.timeIntervalSince($0.value) < handoverGrace && !isRunningElsewhere($0.key, now: now) }) else { return }
        guard let (balance, _) = clusterBalance(leases: Array(remoteLeases.values) + ownLeases(now: now), now: now) else { return }
        let excess = balance.excess(of: configuration.nodeID)
        guard excess > 0 else { return }
        let moves = moveBudget.take(excess, now: now)
        guard moves > 0 else { return }
        // Connected sessions move; one pairing or reconnecting stays where it is.
        let movable = running.filter { sessions[$0]?.status.state == .connected }.shuffled()
        logger.info("handing sessions over to balance the cluster", metadata: ["count": "\(min(moves, movable.count))", "excess": "\(excess)"])
        startHandOver(Array(movable.prefix(moves)), now: now)
    }

    /// Follows this node's drain request as its row was last read: asked, it takes nothing and hands everything over;
    /// lifted, it takes sessions again. A row of an earlier start (before this one's first heartbeat) is not followed.
    func followDrainRequest() {
        guard !shuttingDown, let own = clusterNodes[configuration.nodeID], abs(own.startedAt.timeIntervalSince(startedAt)) < 0.001,
            own.drainRequested != draining
        else { return }
        draining = own.drainRequested
        logger.notice(draining ? "draining: handing every session over" : "drain ended: taking sessions again")
    }

    private func isRunningElsewhere(_ tenant: TenantName, now: Date) -> Bool {
        guard let lease = remoteLeases[tenant] else { return false }
        return lease.expiresAt > now
    }

    /// Hands sessions over in a task of its own: the maintenance loop keeps renewing the other leases meanwhile.
    private func startHandOver(_ tenants: [TenantName], now: Date) {
        guard !tenants.isEmpty else { return }
        handingOverInProgress = true
        Task {
            await self.handOver(tenants, now: now)
            self.handingOverInProgress = false
        }
    }

    /// This node's running sessions as lease rows, for the balance (`remoteLeases` holds only other nodes').
    private func ownLeases(now: Date) -> [SessionLease] {
        sessions.compactMap { tenant, session in
            guard session.runner != nil, let generation = session.generation else { return nil }
            return SessionLease(
                tenant: tenant, nodeID: configuration.nodeID, generation: generation, expiresAt: now.addingTimeInterval(configuration.leaseTTL.timeInterval),
                lastBeatAt: now, state: session.status.state.rawValue, lastError: nil)
        }
    }

    /// Closes these sessions (no logout) and releases their leases marked for another node to take at once.
    func handOver(_ tenants: [TenantName], now: Date) async {
        guard !tenants.isEmpty else { return }
        let reason = draining ? "drain" : "balance"
        for tenant in tenants where sessions[tenant]?.runner != nil {
            logger.info("handing a session over", metadata: ["tenant": "\(tenant)", "reason": "\(reason)"])
            handingOver.insert(tenant)
            handedOverAt[tenant] = now
        }
        await withTaskGroup(of: Void.self) { group in
            for tenant in tenants { group.addTask { await self.stopRunner(tenant, finalState: .stopped) } }
        }
        handedOverAt = handedOverAt.filter { now.timeIntervalSince($0.value) < handoverGrace }
    }

    // MARK: Sessions in motion

    /// Why a session cannot serve a request here: moving (503, retry) while it changes nodes, else not connected.
    func notConnected(_ tenant: TenantName, state: SessionState? = nil) -> SessionPoolError {
        if isMoving(tenant, state: state) { return SessionPoolError(.moving, "the session is moving between nodes; retry shortly") }
        return SessionPoolError(.wrongState, "the session is not connected" + (state.map { " (state \($0.rawValue))" } ?? ""))
    }

    /// True while the session changes nodes: being handed over from here, on its first connection here after a
    /// takeover, or released for a handover (or left by a dead node) and not yet taken.
    func isMoving(_ tenant: TenantName, state: SessionState?) -> Bool {
        let now = configuration.clock.now()
        if handingOver.contains(tenant) || (arriving.contains(tenant) && state == .connecting) { return true }
        if let at = handedOverAt[tenant], now.timeIntervalSince(at) < handoverGrace { return true }
        guard let lease = remoteLeases[tenant], lease.expiresAt <= now else { return false }
        if lease.state == handedOverLeaseState { return now.timeIntervalSince(lease.lastBeatAt) < handoverGrace }
        // Its node stopped without releasing it: a live node takes it over within a heartbeat of the expiry.
        return lease.state != releasedLeaseState && now.timeIntervalSince(lease.expiresAt) < configuration.leaseTTL.timeInterval
    }
}
