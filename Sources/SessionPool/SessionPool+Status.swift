import Foundation
import Tenancy
import WahostBasics

/// Status subscribers per tenant: each gets every change of its tenant's status, newest kept when slow.
struct StatusSubscribers {
    private var byTenant: [TenantName: [UInt64: AsyncStream<SessionStatus>.Continuation]] = [:]
    private var nextID: UInt64 = 0

    /// Adds a subscriber of `tenant`; returns its id for `remove`.
    mutating func add(_ continuation: AsyncStream<SessionStatus>.Continuation, of tenant: TenantName) -> UInt64 {
        nextID += 1
        byTenant[tenant, default: [:]][nextID] = continuation
        return nextID
    }

    /// Forgets one subscriber (its stream ended).
    mutating func remove(_ id: UInt64, of tenant: TenantName) {
        byTenant[tenant]?[id] = nil
        if byTenant[tenant]?.isEmpty == true { byTenant[tenant] = nil }
    }

    /// Sends `status` to every subscriber of its tenant.
    func publish(_ status: SessionStatus) {
        guard let continuations = byTenant[status.tenant] else { return }
        for continuation in continuations.values { continuation.yield(status) }
    }

    /// Ends the streams of `tenant`'s subscribers.
    mutating func finish(_ tenant: TenantName) {
        guard let continuations = byTenant.removeValue(forKey: tenant) else { return }
        for continuation in continuations.values { continuation.finish() }
    }

    /// Ends every stream.
    mutating func finishAll() {
        for tenant in Array(byTenant.keys) { finish(tenant) }
    }
}

extension SessionPool {
    /// Applies `change` to the tenant's status; publishes it and moves the state gauges when it changed.
    func update(_ tenant: TenantName, _ change: (inout SessionStatus) -> Void) {
        guard var session = sessions[tenant] else { return }
        let old = session.status
        change(&session.status)
        guard session.status != old else { return }
        sessions[tenant] = session
        if old.state != session.status.state {
            metrics.left(old.state)
            metrics.entered(session.status.state)
            eventLog?.record(Self.sessionEvent(session.status, at: configuration.clock.now()))
        }
        subscribers.publish(session.status)
    }

    /// The `session` event of a state change: `{"state", "connected", "me", "last_error"}`.
    static func sessionEvent(_ status: SessionStatus, at time: Date) -> NewTenantEvent {
        let json = JSONText.object([
            "connected": .bool(status.connected), "last_error": .string(status.lastError), "me": .string(status.me), "state": .string(status.state.rawValue),
        ])
        return NewTenantEvent(tenant: status.tenant, type: "session", at: time, data: json)
    }

    func unsubscribe(_ tenant: TenantName, _ id: UInt64) {
        subscribers.remove(id, of: tenant)
    }

    /// The first status (current or coming) that satisfies `predicate`, or the last one seen when `timeout` passes.
    func waitForStatus(
        of tenant: TenantName, timeout: Duration, _ predicate: @escaping @Sendable (SessionStatus) -> Bool
    ) async -> SessionStatus? {
        let stream = updates(of: tenant)
        let latest = LatestStatus()
        let clock = configuration.clock
        return await withTaskGroup(of: SessionStatus?.self) { group in
            group.addTask {
                for await status in stream {
                    latest.set(status)
                    if predicate(status) { return status }
                }
                return nil
            }
            group.addTask {
                try? await clock.sleep(timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first ?? latest.value
        }
    }
}

/// The last status a waiter saw, shared between its two child tasks.
private final class LatestStatus: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: SessionStatus?
    func set(_ value: SessionStatus) { lock.withLock { stored = value } }
    var value: SessionStatus? { lock.withLock { stored } }
}
