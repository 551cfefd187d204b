import Foundation
import SessionPool
import Tenancy
import WahostBasics

/// Refuses a node id that another live process already runs under: two processes under one id would both take the
/// same leases and fight over every session (the data directory's lock file catches this only on one machine).
public enum NodeIDCheck {
    /// Throws when the `cluster_nodes` row of `nodeID` keeps beating; waits one heartbeat when it is fresh, since a
    /// node restarted after a crash finds its own last row there.
    public static func ensureFree(_ services: WahostServices) async throws {
        guard services.configuration.usesPostgres else { return }
        let pool = services.configuration.poolConfiguration
        let (nodeID, heartbeat, ttl) = (pool.nodeID, pool.heartbeatInterval, pool.leaseTTL)
        guard let first = try await services.store.clusterNodes().first(where: { $0.nodeID == nodeID }),
            Date().timeIntervalSince(first.lastBeatAt) < ttl.timeInterval
        else { return }
        try await Task.sleep(for: heartbeat + .seconds(1))
        guard let again = try await services.store.clusterNodes().first(where: { $0.nodeID == nodeID }), again.lastBeatAt > first.lastBeatAt else {
            return
        }
        throw ConfigurationError(
            "node id '\(nodeID)' is in use by another live node (it beat at \(again.lastBeatAt)); give each node its own --node-id")
    }
}
