import Foundation
import TestSupport
import Testing
import WhatsAppSimulator

/// Nodes on one PostgreSQL with nothing else shared: each its own data directory, credentials in the database.
@Suite struct ClusterTests {
    /// Starts `serve` as `nodeID` on a data directory of its own.
    func startNode(_ rig: APIRig, _ nodeID: String) async throws -> (ServerProcess, Int) {
        let port = try freePort()
        let directory = try makeTemporaryDirectory("wahost-\(nodeID)")
        let server = try ServerProcess.start(
            arguments: ["serve", "--port", "\(port)", "--data-dir", directory, "--node-id", nodeID], environment: rig.environment)
        rig.servers.append(server)
        try await server.waitForHealth(port: port)
        return (server, port)
    }

    @Test func aStoppedNodeHandsItsSessionsOverWithinSecondsAndNodesShareNoFiles() async throws {
        guard ExternalTools.postgresEnabled else { return }
        let rig = try await APIRig()
        defer { Task { await rig.stopAll() } }
        rig.databaseURL = try await makePostgresDatabase()
        // A long lease: a takeover by expiry or by the periodic scan (every 30 s) would miss the 5 s bound below.
        rig.extraEnvironment["WAHOST_LEASE_TTL"] = "90"
        let names = (1...6).map { "c\($0)" }
        var tokens: [String: String] = [:]
        for name in names { tokens[name] = try await rig.createTenant(name).token }
        let nodes = [try await startNode(rig, "node-a"), try await startNode(rig, "node-b"), try await startNode(rig, "node-c")]
        var users: [String: String] = [:]
        for (index, name) in names.enumerated() {
            users[name] = try await pairByQR(rig, port: nodes[index % 3].1, tenant: name, token: tokens[name]!)
        }
        #expect(!FileManager.default.fileExists(atPath: rig.dataDirectory + "/auth/c1"), "no credential files anywhere shared")

        let (stopping, stoppingPort) = nodes[0]
        let moving = ["c1", "c4"]  // paired through node-a, so running there
        for name in moving { #expect(try await isConnected(stoppingPort, name)) }
        let loginsBefore = await rig.simulator.observed.logins
        let stoppedAt = ContinuousClock.now
        await stopping.stopDetached()
        for name in moving {
            try await eventually(timeout: .seconds(15), "\(name) taken over") {
                let observed = await rig.simulator.observed
                let user = users[name]!
                return observed.logins[user, default: 0] > loginsBefore[user, default: 0] && observed.liveConnections[user] == 1
            }
        }
        let moved = ContinuousClock.now - stoppedAt
        #expect(moved < .seconds(5), "handed over in \(moved), not at a scan or lease expiry")
        for name in moving {
            let (onB, onC) = (try await isConnected(nodes[1].1, name), try await isConnected(nodes[2].1, name))
            #expect(onB || onC, "\(name) runs on a surviving node")
        }
        let observed = await rig.simulator.observed
        for user in users.values { #expect(observed.peakConnectionsPerAccount[user] == 1, "never two live connections for \(user)") }
        #expect(observed.registrations == names.count, "no session paired again")
    }
}
