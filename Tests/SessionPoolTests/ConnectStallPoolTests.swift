import Foundation
import SessionPool
import TestSupport
import Testing
import WhatsApp
import WhatsAppSimulator

/// A WhatsApp endpoint that accepts TCP and never answers the WebSocket upgrade (issue 19): the session does not stay
/// in `connecting`; each attempt ends at the upgrade deadline with its socket closed, the pool backs off and tries
/// again, and the session logs in once a server that answers is back on the port.
@Suite(.serialized) struct ConnectStallPoolTests {
    /// A rig, the same rig with clients that give the upgrade `upgradeTimeout`, and the port its simulator listens on.
    private func rigs(upgradeTimeout: Duration) async throws -> (PoolRig, PoolRig, Int) {
        let base = try await PoolRig.make()
        var configuration = base.clientConfiguration
        configuration.upgradeTimeout = upgradeTimeout
        let port = try #require(URLComponents(string: configuration.url)?.port)
        let short = PoolRig(simulator: base.simulator, store: base.store, files: base.files, clientConfiguration: configuration, tenants: base.tenants)
        return (base, short, port)
    }

    @Test func attemptsToAServerThatNeverAnswersTheUpgradeEndClosedAndTheSessionLogsInWhenTheServerAnswers() async throws {
        // Paired with the default deadline (a loaded machine can take longer than the short one to upgrade), then
        // restored by a pool whose upgrade deadline is short, against a server that never answers it.
        let (base, rig, port) = try await rigs(upgradeTimeout: .milliseconds(300))
        let first = base.pool()
        await first.startMaintenance()
        let tenant = rig.tenants[0]
        let user = try await base.pair(tenant, on: first)
        await first.shutdown()
        await rig.simulator.stop()

        let listener = try await SilentListener.start(port: port)
        let pool = rig.pool()
        await pool.startMaintenance()
        var mostOpen = 0
        try await waitUntil(timeout: .seconds(30)) {
            mostOpen = max(mostOpen, listener.observed.open)
            return listener.observed.closedByClient >= 3
        }
        #expect(mostOpen <= 1, "each attempt's socket is closed before the next attempt")
        #expect(await pool.status(of: tenant).lastError == "network error: websocket upgrade timed out after 0.3 s")
        #expect(listener.observed.upgradeRequests >= 3)
        await listener.stop()
        let seen = listener.observed
        #expect(seen.closedAtStop <= 1, "only the attempt in progress was left for the listener to close")
        #expect(seen.closedByClient + seen.closedAtStop == seen.accepted)

        _ = try await rig.simulator.start(port: port)
        try await waitUntil { await pool.status(of: tenant).state == .connected }
        #expect(await rig.simulator.observed.logins[user, default: 0] >= 2, "the login after pairing, then the one after the stalls")
        #expect(await rig.simulator.observed.liveConnections[user] == 1)
        await pool.shutdown()
        await rig.simulator.stop()
    }

    @Test func restartingASessionWhoseUpgradeGoesUnansweredEndsTheAttemptAndClosesItsSocket() async throws {
        let (_, rig, port) = try await rigs(upgradeTimeout: .seconds(600))
        let pool = rig.pool()
        await pool.startMaintenance()
        let tenant = rig.tenants[0]
        _ = try await rig.pair(tenant, on: pool)
        await rig.simulator.stop()

        let listener = try await SilentListener.start(port: port)
        try await waitUntil { listener.observed.upgradeRequests == 1 }
        #expect(await pool.status(of: tenant).state == .connecting)
        // The restart stops the runner (its attempt waits on the upgrade) before it starts the session again.
        try await pool.restart(tenant)
        try await waitUntil { listener.observed.closedByClient >= 1 }
        await pool.shutdown()
        // The listener notices a close by the client asynchronously, maybe after the shutdown returned.
        try await waitUntil { listener.observed.closedByClient == listener.observed.accepted }
        await listener.stop()
        let seen = listener.observed
        #expect(seen.closedByClient + seen.closedAtStop == seen.accepted)
        #expect(seen.closedAtStop == 0, "the shutdown closed the restarted attempt's socket too")
        await rig.simulator.stop()
    }
}
