import Foundation
import SessionPool
import Storage
import Tenancy
import TestSupport
import Testing
import WhatsAppSimulator

/// A node that lost its lease without knowing (frozen past the TTL) cannot change what the node that took over runs.
@Suite(.serialized) struct LeaseFencingTests {
    @Test func aNodeFrozenPastItsLeaseDoesNotStopTheSessionItsTakerRuns() async throws {
        let rig = try await PoolRig.make()
        let tenant = rig.tenants[0]
        let frozenRecords = ObservedRecords(base: rig.store)
        let frozen = rig.pool(node: "node-a", ttl: .seconds(2), records: frozenRecords)
        await frozen.startMaintenance()
        let user = try await rig.pair(tenant, on: frozen)
        // node-a's heartbeat stops; its WhatsApp connection does not. Its lease runs out and node-b takes the session:
        // WhatsApp tells node-a `replaced` when node-b logs in, as it would a node resumed after SIGSTOP.
        await frozenRecords.renewals.close()
        // A long lease for the taker: on a loaded machine a 2 s lease could lapse between its renewals, and a write with
        // no live holder anywhere is allowed.
        let taker = rig.pool(node: "node-b", ttl: .seconds(15))
        await taker.startMaintenance()
        try await waitUntil(timeout: .seconds(30)) {
            let status = await taker.status(of: tenant)
            return status.ownerNode == "node-b" && status.state == .connected
        }
        try await waitUntil { await frozen.status(of: tenant).state == .replaced }
        #expect(try await rig.store.desiredStates()[tenant] == .running, "node-a's `replaced` must not stop node-b's session")
        await frozenRecords.renewals.open()
        await frozen.shutdown()
        // The session survives node-b's restart too: it is still wanted running.
        await taker.shutdown()
        let next = rig.pool(node: "node-c", ttl: .seconds(2))
        await next.startMaintenance()
        try await waitUntil(timeout: .seconds(30)) { await next.status(of: tenant).state == .connected }
        #expect(await rig.simulator.observed.registrations == 1, "no second pairing")
        #expect(await rig.simulator.observed.logins[user] ?? 0 >= 3)
        await next.shutdown()
        await rig.simulator.stop()
    }

    @Test func aNodeWhoseRenewalsStalledPastTheLeaseDoesNotReconnectOnIt() async throws {
        let rig = try await PoolRig.make()
        let tenant = rig.tenants[0]
        let stalledRecords = ObservedRecords(base: rig.store)
        let stalled = rig.pool(node: "node-a", ttl: .seconds(2), records: stalledRecords)
        await stalled.startMaintenance()
        let user = try await rig.pair(tenant, on: stalled)
        try await waitUntil { await stalled.status(of: tenant).state == .connected }
        let loginsBefore = await rig.simulator.observed.logins[user] ?? 0
        // node-a's heartbeat stalls past its lease (as in a node resumed after SIGSTOP, before its first renewal),
        // then its connection drops with a network error rather than the `replaced` a taker's login would send.
        await stalledRecords.renewals.close()
        try await Task.sleep(for: .milliseconds(2500))
        #expect(await rig.simulator.dropConnections(ofAccount: user) == 1)
        // Its reconnect must wait for a renewal, which waits on the stalled database: a second, five times its longest
        // backoff, passes without a login; then node-b takes over.
        try await Task.sleep(for: .seconds(1))
        #expect(await rig.simulator.observed.logins[user] ?? 0 == loginsBefore, "node-a did not connect again")
        let taker = rig.pool(node: "node-b", ttl: .seconds(15))
        await taker.startMaintenance()
        try await waitUntil(timeout: .seconds(30)) {
            let status = await taker.status(of: tenant)
            return status.ownerNode == "node-b" && status.state == .connected
        }
        await stalledRecords.renewals.open()
        // node-a's runner ends: it answers for the session with the lease's owner now.
        try await waitUntil { await stalled.status(of: tenant).ownerNode == "node-b" }
        #expect(await rig.simulator.observed.logins[user] ?? 0 == loginsBefore + 1, "node-b logged in; node-a did not connect again")
        #expect(await taker.status(of: tenant).state == .connected, "node-b's session was not replaced")
        #expect(try await rig.store.desiredStates()[tenant] == .running)
        await stalled.shutdown()
        await taker.shutdown()
        await rig.simulator.stop()
    }
}
