import Foundation
import Tenancy
import Testing

@testable import SessionPool

/// The restore queue as a value: which stored sessions a scan queues, in milliseconds and without a database.
@Suite struct RestoreQueueTests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    func lease(_ tenant: TenantName, node: String, expiresIn seconds: TimeInterval) -> SessionLease {
        SessionLease(
            tenant: tenant, nodeID: node, generation: 1, expiresAt: now.addingTimeInterval(seconds), lastBeatAt: now, state: "connected",
            lastError: nil)
    }

    @Test func aScanQueuesRunningSessionsNoLiveNodeHolds() throws {
        let (a, b, c, d) = (try TenantName("a"), try TenantName("b"), try TenantName("c"), try TenantName("d"))
        var queue = RestoreQueue()
        let plan = queue.plan(
            desired: [a: .running, b: .running, c: .running, d: .stopped],
            leases: [lease(b, node: "node-b", expiresIn: 10), lease(c, node: "node-b", expiresIn: -1), lease(a, node: "node-a", expiresIn: 10)],
            nodeID: "node-a", now: now, readAt: 7, admits: { _ in true })
        #expect(plan.queued == 2, "a (our own lease) and c (expired); not b (held live), not d (stopped)")
        #expect(Set(plan.others.keys) == [b, c])
        #expect(queue.next() == .init(tenant: a, readAt: 7))
        #expect(queue.next() == .init(tenant: c, readAt: 7))
        #expect(queue.next() == nil)
        #expect(!queue.isIdle, "restores started and not finished")
        queue.finished(a)
        queue.finished(c)
        #expect(queue.isIdle)
    }

    @Test func aTenantIsNeverQueuedTwiceAndTheUnrestorableAndTheRefusedWait() throws {
        let (a, b, c) = (try TenantName("a"), try TenantName("b"), try TenantName("c"))
        var queue = RestoreQueue()
        let desired: [TenantName: DesiredSessionState] = [a: .running, b: .running, c: .running]
        #expect(queue.plan(desired: desired, leases: [], nodeID: "n", now: now, readAt: 1, admits: { $0 != c }).queued == 2)
        #expect(queue.plan(desired: desired, leases: [], nodeID: "n", now: now, readAt: 2, admits: { $0 != c }).queued == 0, "a and b are queued")
        _ = queue.next()
        queue.markUnrestorable(a)
        queue.finished(a)
        #expect(queue.plan(desired: desired, leases: [], nodeID: "n", now: now, readAt: 3, admits: { _ in true }).queued == 1, "only c")
        queue.clearUnrestorable(a)
        queue.finished(a)
        #expect(queue.plan(desired: desired, leases: [], nodeID: "n", now: now, readAt: 4, admits: { _ in true }).queued == 1, "a again")
    }

    @Test func stoppingEmptiesTheQueue() throws {
        var queue = RestoreQueue()
        let desired = Dictionary(uniqueKeysWithValues: try (0..<5).map { (try TenantName("t\($0)"), DesiredSessionState.running) })
        #expect(queue.plan(desired: desired, leases: [], nodeID: "n", now: now, readAt: 1, admits: { _ in true }).queued == 5)
        #expect(queue.next() != nil)
        #expect(queue.next(stopping: true) == nil)
        #expect(queue.pendingCount == 0)
    }
}
