import Foundation
import Tenancy

/// Which stored sessions this node should restore or take over, and the queue they wait in; a value, no I/O.
struct RestoreQueue {
    /// A session to restore, with the lifecycle epoch at which the records that queued it were read.
    struct Entry: Equatable {
        let tenant: TenantName
        let readAt: UInt64
    }

    private var entries: [Entry] = []
    private var head = 0
    /// Tenants queued or being restored; a tenant is never queued twice.
    private(set) var restoring: Set<TenantName> = []
    /// Tenants marked running whose credentials are not here; left alone until a restart or a new pairing.
    private(set) var unrestorable: Set<TenantName> = []

    /// Restores queued and not yet started.
    var pendingCount: Int { entries.count - head }

    /// True when nothing is queued or being restored.
    var isIdle: Bool { pendingCount == 0 && restoring.isEmpty }

    /// Queues every session that should run and that no live node holds: not queued already, not known to be
    /// unrestorable here, admitted by the pool (`admits`: not running here, not changed since `readAt`). Returns the
    /// leases of other nodes and how many sessions were queued.
    mutating func plan(
        desired: [TenantName: DesiredSessionState], leases: [SessionLease], nodeID: String, now: Date, readAt: UInt64,
        admits: (TenantName) -> Bool
    ) -> (others: [TenantName: SessionLease], queued: Int) {
        var others: [TenantName: SessionLease] = [:]
        for lease in leases where lease.nodeID != nodeID { others[lease.tenant] = lease }
        var queued = 0
        for (tenant, state) in desired.sorted(by: { $0.key.rawValue < $1.key.rawValue }) where state == .running {
            if restoring.contains(tenant) || unrestorable.contains(tenant) || !admits(tenant) { continue }
            if let lease = others[tenant], lease.expiresAt > now { continue }
            restoring.insert(tenant)
            entries.append(Entry(tenant: tenant, readAt: readAt))
            queued += 1
        }
        return (others, queued)
    }

    /// The next restore to start, or nil (and the queue's storage released) when none is left or `stopping`.
    mutating func next(stopping: Bool = false) -> Entry? {
        guard head < entries.count, !stopping else {
            entries.removeAll()
            head = 0
            return nil
        }
        defer { head += 1 }
        return entries[head]
    }

    /// A restore ended (connected, failed or dropped); the tenant may be queued again by a later scan.
    mutating func finished(_ tenant: TenantName) { restoring.remove(tenant) }

    /// The tenant's credentials are not here: later scans skip it.
    mutating func markUnrestorable(_ tenant: TenantName) { unrestorable.insert(tenant) }

    /// The tenant was started or paired by hand: scans may restore it again.
    mutating func clearUnrestorable(_ tenant: TenantName) { unrestorable.remove(tenant) }
}
