import Foundation
import Synchronization

/// The lease generation this node last took for each tenant, read by the stores that fence their writes with it.
///
/// Entries are only ever replaced, never cleared: after a lease is lost or released the old generation no longer
/// matches `session_leases`, so a late write fails in the database instead of landing.
public final class LeaseFences: Sendable {
    /// The node id of this process, for tenants it never held a lease on.
    public let nodeID: String
    private let leases = Mutex<[TenantName: (nodeID: String, generation: Int64)]>([:])

    public init(nodeID: String) {
        self.nodeID = nodeID
    }

    /// Records a lease this process just took.
    public func tookLease(of tenant: TenantName, nodeID: String, generation: Int64) {
        leases.withLock { $0[tenant] = (nodeID, generation) }
    }

    /// The fence a write of `tenant`'s records is made under: its last lease here, or else that no other node holds one.
    public func fence(for tenant: TenantName, now: Date = Date()) -> LeaseFence {
        guard let lease = leases.withLock({ $0[tenant] }) else { return .noOtherLiveHolder(nodeID: nodeID, now: now) }
        return .holder(nodeID: lease.nodeID, generation: lease.generation)
    }

    /// The fence for a wipe: no other node holds a live lease (the session here may have released its own already).
    public func wipeFence(for tenant: TenantName, now: Date = Date()) -> LeaseFence {
        .noOtherLiveHolder(nodeID: leases.withLock { $0[tenant]?.nodeID } ?? nodeID, now: now)
    }
}

extension LeaseFence {
    /// Whether the fence holds over the tenant's lease row (nil: it has none).
    public func holds(over lease: SessionLease?) -> Bool {
        switch self {
        case .holder(let nodeID, let generation):
            guard let lease else { return false }
            return lease.nodeID == nodeID && lease.generation == generation && lease.expiresAt > Date(timeIntervalSince1970: 0)
        case .noOtherLiveHolder(let nodeID, let now):
            guard let lease else { return true }
            return lease.nodeID == nodeID || lease.expiresAt <= now
        }
    }
}

extension RepositoryError {
    /// The write's fence failed: another node holds the tenant's session now.
    public static func leaseLost(_ tenant: TenantName) -> RepositoryError {
        RepositoryError(.fenced, "this node no longer holds the session lease of tenant '\(tenant)'; the write was refused")
    }
}
