import Foundation
import Logging
import Storage
import Tenancy
import Testing
import WhatsAppSimulator

@testable import SessionPool

/// What a node takes of a handed-over session depends on its view of the cluster's rows at the scan that decides:
/// a view older than the leases it reads sent sessions to no node (an undrained node declined the share the others
/// were handing it) or to the wrong one (a node just started took what was assigned to another, then gave it on).
@Suite(.serialized) struct ClusterViewTests {
    /// A pool on the rig's SQLite database and node rows, on `clock` (its restores wait for the clock: a queued one stays queued).
    func pool(_ rig: PoolRig, node: String, clock: ManualClock) -> SessionPool {
        var logger = Logger(label: "test.pool.\(node)")
        logger.logLevel = .warning
        let files = rig.files
        return SessionPool(
            configuration: SessionPoolConfiguration(
                nodeID: node, leaseTTL: .seconds(30), heartbeatInterval: .seconds(10), restoreJitter: .milliseconds(10), clock: clock.poolClock),
            records: rig.store, clientConfiguration: rig.clientConfiguration,
            credentialStore: { TenantCredentialStore(tenant: $0, files: files) }, logger: logger, nodes: rig.store)
    }

    /// node-a runs `kept` and has just handed `moved` over (to balance): with node-a at one session and node-b at none,
    /// `moved` is node-b's by the shared assignment.
    func handOverToNodeB(_ rig: PoolRig, moved: TenantName, kept: TenantName) async throws {
        for tenant in [moved, kept] { try await rig.store.setDesiredState(.running, for: tenant) }
        _ = try await rig.store.acquireLease(for: kept, nodeID: "node-a", ttl: .seconds(30), now: Date())
        let lease = try #require(try await rig.store.acquireLease(for: moved, nodeID: "node-a", ttl: .seconds(30), now: Date()))
        try await rig.store.releaseLease(for: moved, nodeID: "node-a", generation: lease.generation, handOver: true)
    }

    func beat(_ rig: PoolRig, _ node: String) async throws {
        _ = try await rig.store.beatNode(ClusterNode(nodeID: node, advertiseURL: nil, startedAt: Date(), lastBeatAt: Date()), forgetBefore: .distantPast)
    }

    /// Lets queued restores run (they find no credentials and end), then stops the pools.
    func finish(_ clock: ManualClock, _ rig: PoolRig, _ pools: [SessionPool]) async throws {
        for pool in pools {
            // A worker may not have begun its jitter sleep yet: move the clock on until every worker ended.
            try await waitUntil {
                clock.advance(by: .seconds(1))
                return await pool.restoreWorkers == 0
            }
            await pool.shutdown()
        }
        await rig.simulator.stop()
    }

    @Test func aNodeWhoseDrainWasLiftedTakesTheShareHandedToItAtItsNextScan() async throws {
        let rig = try await PoolRig.make(tenants: ["moved", "kept"])
        let (moved, kept) = (rig.tenants[0], rig.tenants[1])
        let clock = ManualClock()
        let nodeB = pool(rig, node: "node-b", clock: clock)
        try await beat(rig, "node-a")
        await nodeB.beatNode()
        #expect(try await rig.store.setDrainRequested(true, for: "node-b", at: clock.now))
        await nodeB.beatNode()
        await nodeB.balance(now: clock.now)
        #expect(await nodeB.draining, "node-b follows its drain request")

        // The drain is lifted; node-a reads that first and hands node-b its share. node-b's heartbeat has read its row
        // (the others may well have read it earlier); its next scan must take the session, not decline it as drained.
        #expect(try await rig.store.setDrainRequested(false, for: "node-b", at: clock.now))
        try await handOverToNodeB(rig, moved: moved, kept: kept)
        await nodeB.beatNode()
        await nodeB.scan()
        #expect(await !nodeB.draining)
        #expect(await nodeB.restoreQueue.restoring == [moved], "node-b takes the session handed to it, and only that one")
        try await finish(clock, rig, [nodeB])
    }

    @Test func aSessionHandedOverAgainIsTakenByTheNodeEveryNodeAssignsItTo() async throws {
        let rig = try await PoolRig.make(tenants: ["moved", "kept1", "kept2"])
        let moved = rig.tenants[0]
        let clock = ManualClock()
        try await beat(rig, "node-a")
        let nodeB = pool(rig, node: "node-b", clock: clock)
        await nodeB.beatNode()
        // node-b balanced `moved` away a moment ago; node-c took it and, stopping now, hands it over again. node-a runs
        // two sessions, node-b none: every node assigns `moved` to node-b, which must not decline it as its own handover.
        await nodeB.noteHandedOver(moved, at: clock.now)
        for tenant in rig.tenants { try await rig.store.setDesiredState(.running, for: tenant) }
        for tenant in rig.tenants.dropFirst() { _ = try await rig.store.acquireLease(for: tenant, nodeID: "node-a", ttl: .seconds(30), now: Date()) }
        let lease = try #require(try await rig.store.acquireLease(for: moved, nodeID: "node-c", ttl: .seconds(30), now: Date()))
        try await rig.store.releaseLease(for: moved, nodeID: "node-c", generation: lease.generation, handOver: true)
        await nodeB.scan()
        #expect(await nodeB.restoreQueue.restoring == [moved], "node-b takes it at once, not after the grace")
        try await finish(clock, rig, [nodeB])
    }

    @Test func aNodeJustStartedLeavesAHandedOverSessionToTheNodeItWasAssignedTo() async throws {
        let rig = try await PoolRig.make(tenants: ["moved", "kept"])
        let (moved, kept) = (rig.tenants[0], rig.tenants[1])
        try await beat(rig, "node-a")
        try await beat(rig, "node-b")
        try await handOverToNodeB(rig, moved: moved, kept: kept)
        // The clock starts after the release (stamped with the real time), so 21 s on it is past the grace however
        // slowly the set-up ran (a loaded full run took seconds over it, and the session was still within its grace).
        let clock = ManualClock()
        // node-c starts while the session is in flight: its first scan comes before its first heartbeat's rows.
        let nodeC = pool(rig, node: "node-c", clock: clock)
        await nodeC.scan()
        #expect(await nodeC.restoreQueue.restoring.isEmpty, "node-c leaves node-b's session alone")

        // Once the handover's grace (two heartbeats) passed, any node takes a session still free.
        clock.advance(by: .seconds(21))
        try await beat(rig, "node-a")
        try await beat(rig, "node-b")
        await nodeC.scan()
        #expect(await nodeC.restoreQueue.restoring == [moved])
        try await finish(clock, rig, [nodeC])
    }
}

extension SessionPool {
    /// What `handOver` records for a session this node just handed over (no session runs in these tests).
    func noteHandedOver(_ tenant: TenantName, at date: Date) { handedOverAt[tenant] = date }
}
