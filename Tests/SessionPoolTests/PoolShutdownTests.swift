import Foundation
import SessionPool
import Storage
import Tenancy
import TestSupport
import Testing
import WhatsAppSimulator

/// A node's shutdown ends the restores under way before it returns: its caller closes the database next, and a
/// PostgreSQL client closed under a call in flight kept a stopping `serve` alive past its supervisor's patience.
@Suite(.serialized) struct PoolShutdownTests {
    @Test func aShutdownWaitsForTheRestoreUnderWayAndHandsItsSessionOn() async throws {
        let rig = try await PoolRig.make()
        let tenant = rig.tenants[0]
        let first = rig.pool(node: "node-a")
        await first.startMaintenance()
        let user = try await rig.pair(tenant, on: first)
        await first.shutdown()

        // node-b's restore of the session is taking the lease when node-b is told to stop.
        let records = ObservedRecords(base: rig.store)
        await records.claims.close()
        let next = rig.pool(node: "node-b", records: records)
        await next.startMaintenance()
        try await waitUntil(timeout: .seconds(30)) { await records.claims.waitingCount > 0 }
        let stopping = Task { () -> Int in
            await next.shutdown()
            return await records.claimCalls.underWay
        }
        // Long enough for a shutdown that does not wait to return while the claim is held.
        try await Task.sleep(for: .milliseconds(300))
        await records.claims.open()
        #expect(await stopping.value == 0, "the shutdown returned with the restore's lease claim still under way")
        let lease = try await rig.store.lease(of: tenant)
        #expect(lease == nil || lease!.nodeID != "node-b" || lease!.expiresAt <= Date(), "node-b handed the session on: \(String(describing: lease))")
        #expect(await rig.simulator.observed.liveConnections[user, default: 0] == 0, "no connection left behind by the stopped node")
        #expect(try await rig.store.desiredStates()[tenant] == .running, "the session is still wanted; the next node restores it")
        await rig.simulator.stop()
    }
}
