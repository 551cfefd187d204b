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
        await stopping.stop()
        #expect(stopping.process.terminationStatus == 0, "a SIGTERM is a clean stop, not a failure")
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
        await rig.stopAll()
    }

    @Test func aNewNodeTakesAShareAndADrainedNodeHandsEverythingOverWithoutStopping() async throws {
        guard ExternalTools.postgresEnabled else { return }
        let rig = try await APIRig()
        defer { Task { await rig.stopAll() } }
        rig.databaseURL = try await makePostgresDatabase()
        rig.extraEnvironment["WAHOST_LEASE_TTL"] = "6"
        rig.extraEnvironment["WAHOST_BALANCE_MOVES_PER_MINUTE"] = "600"
        let names = (1...6).map { "b\($0)" }
        var tokens: [String: String] = [:]
        for name in names { tokens[name] = try await rig.createTenant(name).token }
        let operatorToken = try await ClusterForwardingTests().operatorToken(rig)
        let (_, portA) = try await startNode(rig, "node-a")
        var users: [String] = []
        for name in names { users.append(try await pairByQR(rig, port: portA, tenant: name, token: tokens[name]!)) }

        // A second process under node-a's id, on another data directory, is refused: both would take the same leases.
        let twin = try await WahostBinary.runDetached(
            ["serve", "--port", "\(try freePort())", "--data-dir", try makeTemporaryDirectory("wahost-twin"), "--node-id", "node-a"],
            environment: rig.environment)
        #expect(twin.status == 1 && twin.stderr.contains("in use by another live node"), "\(twin.stderr)")

        // A second node joins: node-a, above its fair share (3 of 6), hands sessions over until both run 3.
        let (_, portB) = try await startNode(rig, "node-b")
        try await eventually(timeout: .seconds(30), "three sessions each") {
            let table = try await ClusterForwardingTests().nodes(portB, operatorToken)
            return table["node-a"]?["sessions"] as? Int == 3 && table["node-b"]?["sessions"] as? Int == 3
        }

        // Drained without stopping: node-a hands everything over and stays up, taking nothing.
        let drain = try await http("POST", portB, "/operator/nodes/node-a/drain", headers: ["x-admin-token": operatorToken])
        #expect(drain.status == 202 && drain.object["draining"] as? Bool == true, "\(drain.text)")
        #expect(try await http("POST", portB, "/operator/nodes/node-z/drain", headers: ["x-admin-token": operatorToken]).errorCode == "node_not_found")
        #expect(try await http("POST", portB, "/operator/nodes/node-a/drain", headers: ["x-admin-token": tokens["b1"]!]).status == 401)
        try await eventually(timeout: .seconds(15), "every session on node-b") {
            let table = try await ClusterForwardingTests().nodes(portA, operatorToken)
            let live = await rig.simulator.observed.liveConnections
            return table["node-a"]?["sessions"] as? Int == 0 && table["node-b"]?["sessions"] as? Int == 6
                && table["node-a"]?["draining"] as? Bool == true && users.allSatisfy { live[$0] == 1 }
        }
        #expect(try await http("GET", portA, "/healthz").status == 200, "a drained node keeps running")

        // The drain is lifted: balancing gives node-a its share again.
        let undrain = try await http("DELETE", portA, "/operator/nodes/node-a/drain", headers: ["x-admin-token": operatorToken])
        #expect(undrain.status == 200 && undrain.object["draining"] as? Bool == false)
        try await eventually(timeout: .seconds(30), "three sessions each again") {
            let table = try await ClusterForwardingTests().nodes(portB, operatorToken)
            return table["node-a"]?["sessions"] as? Int == 3 && table["node-b"]?["sessions"] as? Int == 3
        }
        let observed = await rig.simulator.observed
        for user in users { #expect(observed.peakConnectionsPerAccount[user] == 1, "never two live connections for \(user)") }
        #expect(observed.registrations == names.count, "no session paired again")
        await rig.stopAll()
    }
}
