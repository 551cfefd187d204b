import Foundation
import Logging
import Tenancy

/// The node that runs a tenant's session, when it is not this one.
public struct SessionOwner: Sendable, Equatable {
    /// The owner's node id.
    public var nodeID: String
    /// Where the owner takes forwarded requests; nil when its row names none (it cannot be forwarded to).
    public var url: String?
    /// The owner's lease ends then unless renewed; after it another node may take the session.
    public var leaseExpiresAt: Date
}

extension SessionPool {
    /// Node rows not beaten for this long are deleted by the next heartbeat of any node.
    static let forgottenNodeAge: TimeInterval = 7 * 86_400

    /// Which other node holds a live lease on the tenant's session, and at what address; nil when none does or this
    /// node runs it. A lease taken since the last scan is read from the database (at most once a second per tenant).
    public func owner(of tenant: TenantName) async -> SessionOwner? {
        guard sessions[tenant]?.runner == nil, nodes != nil else { return nil }
        let now = configuration.clock.now()
        var lease = remoteLeases[tenant].flatMap { $0.expiresAt > now ? $0 : nil }
        // While this node or the cached owner hands sessions over, the cached lease may already be stale: read the row.
        let moving = shuttingDown || draining || lease.map { clusterNodes[$0.nodeID]?.drainRequested == true } == true
        if lease == nil || moving, now.timeIntervalSince(ownerLookups[tenant] ?? .distantPast) >= (moving ? 0.2 : 1) {
            ownerLookups[tenant] = now
            var row: SessionLease?
            if ownerLookups.count > 10_000 { ownerLookups = ownerLookups.filter { now.timeIntervalSince($0.value) < 1 } }
            do {
                row = try await records.lease(of: tenant)
                lease = nil
            } catch {}  // a failed read keeps the cached owner
            if let row, row.nodeID != configuration.nodeID, row.expiresAt > now {
                remoteLeases[tenant] = row
                lease = row
                if clusterNodes[row.nodeID] == nil { await refreshClusterNodes() }
            }
        }
        guard let lease, sessions[tenant]?.runner == nil else { return nil }
        return SessionOwner(nodeID: lease.nodeID, url: clusterNodes[lease.nodeID]?.advertiseURL, leaseExpiresAt: lease.expiresAt)
    }

    /// Upserts this node's row and refreshes the other nodes' addresses; a failure keeps the addresses known so far.
    func beatNode() async {
        guard let nodes, !shuttingDown else { return }
        let now = configuration.clock.now()
        let row = ClusterNode(nodeID: configuration.nodeID, advertiseURL: configuration.advertiseURL, startedAt: startedAt, lastBeatAt: now)
        do {
            let rows = try await nodes.beatNode(row, forgetBefore: now.addingTimeInterval(-Self.forgottenNodeAge))
            remember(rows)
        } catch {
            logger.storageFailure("cannot record the node heartbeat", error)
        }
    }

    /// Reads every node's row now; a failed read keeps the rows known so far.
    func refreshClusterNodes() async {
        guard let nodes, let rows = try? await nodes.clusterNodes() else { return }
        remember(rows)
    }

    /// Keeps these node rows as the cluster's nodes (addresses, heartbeats, drain requests).
    func remember(_ rows: [ClusterNode]) {
        clusterNodes = Dictionary(rows.map { ($0.nodeID, $0) }, uniquingKeysWith: { $1 })
    }

    /// Marks this node's row as draining before a shutdown hands its sessions over.
    func markLeaving() async {
        guard let nodes else { return }
        let (nodeID, now, logger) = (configuration.nodeID, configuration.clock.now(), logger)
        await completing {
            do { _ = try await nodes.setDrainRequested(true, for: nodeID, at: now) } catch {
                logger.warning("cannot mark the node as leaving", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Deletes this node's row once its sessions are closed (a stop on purpose, not a crash).
    func leaveCluster() async {
        guard let nodes else { return }
        let (nodeID, logger) = (configuration.nodeID, logger)
        // Shutdown runs cancelled (graceful shutdown): the write gets a task of its own, like the lease releases.
        await completing {
            do { try await nodes.removeNode(nodeID) } catch {
                logger.warning("cannot remove the node's row; it reads as not live once its heartbeat is old", metadata: ["error": "\(error)"])
            }
        }
    }
}
