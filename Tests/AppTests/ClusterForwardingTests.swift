import Foundation
import Tenancy
import TestSupport
import Testing
import WhatsAppSimulator

/// Any node answers: requests for a session another node runs are forwarded to it (signed with a key derived from the
/// master key), server-sent events stream through, forged forwarding is refused, and a dead owner gives 503
/// `owner_unreachable` until its session moves.
@Suite(.serialized) struct ClusterForwardingTests {
    /// A server-sent event stream read with curl (response headers first) until it ends or `seconds` pass.
    /// The forwarding headers a node would send, signed with `key`.
    func signedHeaders(
        _ key: NodeForwardingKey, node: String, method: String, target: String, body: String = "", client: String, time: Date = Date()
    ) -> [String: String] {
        let facts = ForwardedRequestFacts(
            time: Int64(time.timeIntervalSince1970), nodeID: node, method: method, target: target, body: Array(body.utf8), clientAddress: client)
        return [
            "x-wahost-forwarded-by": node, "x-wahost-forward-time": String(facts.time), "x-wahost-forward-client": client,
            "x-wahost-forward-signature": key.signature(of: facts),
        ]
    }

    func operatorToken(_ rig: APIRig) async throws -> String {
        let result = try await WahostBinary.runDetached(["operator", "rotate-token", "--data-dir", rig.dataDirectory], environment: rig.environment)
        return try #require(try WahostBinary.json(result)["operator_token"] as? String)
    }

    func nodes(_ port: Int, _ token: String) async throws -> [String: [String: Any]] {
        let answer = try await http("GET", port, "/operator/nodes", headers: ["x-admin-token": token])
        let list = answer.object["nodes"] as? [[String: Any]] ?? []
        return Dictionary(list.compactMap { node in (node["id"] as? String).map { ($0, node) } }, uniquingKeysWith: { $1 })
    }

    @Test func forwardedRequestsAreBelievedOnlyWithTheClustersSignature() async throws {
        let rig = try await APIRig()
        rig.extraEnvironment["WAHOST_LOCKOUT_MAX_FAILURES"] = "3"
        let (token, _) = try await rig.createTenant("acme")
        let (_, port) = try await rig.startServer()
        let key = NodeForwardingKey(masterKey: try MasterKey(base64: rig.masterKey))
        let wrongKey = NodeForwardingKey(masterKey: MasterKey.generate())
        let path = "/tenants/acme/session/status"
        let auth = ["x-admin-token": token]

        // Unsigned, wrongly signed, stale or tampered forwarding headers are refused, and the refusal is audited.
        var otherClient = signedHeaders(key, node: "node-x", method: "GET", target: path, client: "203.0.113.8")
        otherClient["x-wahost-forward-client"] = "203.0.113.9"
        for headers in [
            ["x-wahost-forwarded-by": "node-x", "x-wahost-forward-client": "203.0.113.9"],
            signedHeaders(wrongKey, node: "node-x", method: "GET", target: path, client: "203.0.113.9"),
            signedHeaders(key, node: "node-x", method: "GET", target: path, client: "203.0.113.9", time: Date().addingTimeInterval(-120)),
            signedHeaders(key, node: "node-x", method: "GET", target: "/tenants/other/session/status", client: "203.0.113.9"),
            otherClient,
        ] {
            let answer = try await http("GET", port, path, headers: headers.merging(auth) { $1 })
            #expect(answer.status == 403 && answer.errorCode == "forward_forbidden", "\(headers): \(answer.text)")
        }
        let body = #"{"number": "15551234567"}"#
        let tampered = signedHeaders(key, node: "node-x", method: "POST", target: "/tenants/acme/session/pairing-code", body: body, client: "203.0.113.9")
        let altered = try await http(
            "POST", port, "/tenants/acme/session/pairing-code", headers: tampered.merging(auth) { $1 }, body: Data(#"{"number": "15559999999"}"#.utf8))
        #expect(altered.status == 403 && altered.errorCode == "forward_forbidden", "the body is signed too")
        let audit = try await runProcessDetached("/usr/bin/sqlite3", [rig.dataDirectory + "/system.db", "SELECT actor, client_address FROM audit_log WHERE action = 'node.forward_forbidden'"])
        #expect(audit.stdout.contains("node:node-x|127.0.0.1"), "refusals are audited against the peer: \(audit.stdout)")

        // A correctly signed request is served, and the client it names is the one lockouts count.
        let signed = try await http("GET", port, path, headers: signedHeaders(key, node: "node-x", method: "GET", target: path, client: "203.0.113.9").merging(auth) { $1 })
        #expect(signed.status == 200 && signed.object["tenant"] as? String == "acme", "\(signed.text)")
        for _ in 0..<3 {
            let junk = signedHeaders(key, node: "node-x", method: "GET", target: path, client: "203.0.113.9").merging(["x-admin-token": "junk"]) { $1 }
            #expect(try await http("GET", port, path, headers: junk).status == 401)
        }
        let locked = signedHeaders(key, node: "node-x", method: "GET", target: path, client: "203.0.113.9").merging(["x-admin-token": "junk"]) { $1 }
        #expect(try await http("GET", port, path, headers: locked).errorCode == "locked_out", "the forwarded client is locked out")
        #expect(try await http("GET", port, path, headers: ["x-admin-token": "junk"]).status == 401, "the forwarding peer itself is not")
        await rig.stopAll()
    }

    @Test func advertiseURLIsCheckedAndRequiredForAClusterOnAWildcardAddress() async throws {
        let directory = try makeTemporaryDirectory()
        let environment = ["WAHOST_MASTER_KEY": MasterKey.generate().base64]
        let cases: [([String], String)] = [
            (["--host", "0.0.0.0", "--database-url", "postgres://nobody@127.0.0.1:1/none"], "--advertise-url (WAHOST_ADVERTISE_URL) is required"),
            (["--advertise-url", "ftp://10.0.0.5:8080"], "must be http:// or https://"),
            (["--advertise-url", "http://10.0.0.5:8080/path?q=1"], "must be http:// or https://"),
            (["--advertise-url", "http://user:pw@10.0.0.5"], "must be http:// or https://"),
        ]
        for (arguments, message) in cases {
            let result = try await WahostBinary.runDetached(["serve", "--data-dir", directory] + arguments, environment: environment)
            #expect(result.status == 2 && result.stderr.contains(message), "\(arguments): \(result.stderr)")
        }
    }

    @Test func anyNodeAnswersForTheSessionsOwner() async throws {
        guard ExternalTools.postgresEnabled else { return }
        let rig = try await APIRig()
        defer { Task { await rig.stopAll() } }
        rig.databaseURL = try await makePostgresDatabase()
        // Both sessions stay on node A: this test is about forwarding, not balancing (ClusterTests).
        rig.extraEnvironment["WAHOST_BALANCE_MOVES_PER_MINUTE"] = "0"
        let first = try await rig.createTenant("t1").token
        let second = try await rig.createTenant("t2").token
        let operatorToken = try await operatorToken(rig)
        let (nodeA, portA) = try await rig.startServer { ["--node-id", "node-a", "--advertise-url", "http://127.0.0.1:\($0)/"] }
        let (_, portB) = try await rig.startServer { _ in ["--node-id", "node-b"] }
        let account = try await pairByQR(rig, port: portA, tenant: "t1", token: first)
        let auth = ["x-admin-token": first]

        // Node B learns A's lease on its next scan; from then on it forwards what acts on the session.
        try await eventually("node B forwards t1's groups to node A") {
            let groups = try await http("GET", portB, "/tenants/t1/session/groups", headers: auth)
            return groups.status == 200 && groups.header("x-wahost-served-by") == "node-a"
        }
        for path in ["/tenants/t1/session/status", "/session/status"] {
            let status = try await http("GET", portB, path, headers: auth)
            #expect(status.status == 200 && status.header("x-wahost-served-by") == "node-a", "\(path): \(status.text)")
            #expect(status.object["logged_in"] as? Bool == true && (status.object["me"] as? String)?.hasPrefix(account) == true, "the owner's view")
        }
        #expect(try await http("GET", portB, "/session/groups", headers: auth).header("x-wahost-served-by") == "node-a")
        let anonymous = try await http("GET", portB, "/tenants/t1/session/status")
        #expect(anonymous.object["connected"] as? Bool == true && anonymous.object["tenant"] == nil)

        // Sending through B: the peer receives it once, from t1's account.
        let sent = try await http("POST", portB, "/tenants/t1/messages", headers: auth, body: Data(#"{"to": "15557770002", "text": "via node b"}"#.utf8))
        #expect(sent.status == 201 && sent.header("x-wahost-served-by") == "node-a", "\(sent.text)")
        let alias = try await http("POST", portB, "/session/messages", headers: auth, body: Data(#"{"to": "15557770002", "text": "alias via b"}"#.utf8))
        #expect(alias.status == 201, "\(alias.text)")
        let inbox = await rig.simulator.received(byPeer: "15557770002")
        #expect(inbox.map(\.text) == ["via node b", "alias via b"] && inbox.allSatisfy { $0.from.hasPrefix(account + ":") })
        let tooLarge = try await http("POST", portB, "/tenants/t1/messages", headers: auth, body: Data(repeating: UInt8(ascii: " "), count: 600 * 1024))
        #expect(tooLarge.status == 413 && tooLarge.errorCode == "body_too_large")

        // Events as a JSON page, and as a stream that carries an event sent after it opened.
        let json = auth.merging(["accept": "application/json"]) { $1 }
        let page = try await http("GET", portB, "/tenants/t1/events?limit=1000", headers: json)
        #expect(page.status == 200 && page.header("x-wahost-served-by") == "node-a")
        let lastID = try #require(page.object["last_id"] as? Int)
        async let stream = readEventStream(portB, "/tenants/t1/events", headers: auth.merging(["last-event-id": "\(lastID)"]) { $1 }, seconds: 6)
        try await Task.sleep(for: .seconds(1))
        _ = try await rig.simulator.sendText(from: "15557770003", to: account, text: "live through node b")
        let streamed = try await stream
        #expect(streamed.stdout.lowercased().contains("x-wahost-served-by: node-a") && streamed.stdout.contains("text/event-stream"), "\(streamed.stdout)")
        #expect(streamed.stdout.contains("live through node b"), "the event arrived while the stream was open: \(streamed.stdout)")

        // A new tenant: pairing started on A is continued through B, and its QR pairs the session on A.
        #expect(try await http("GET", portA, "/tenants/t2/session/qr", headers: ["x-admin-token": second]).status == 200)
        var qr: HTTPResult?
        try await eventually("node B forwards t2's QR request") {
            let answer = try await http("GET", portB, "/tenants/t2/session/qr", headers: ["x-admin-token": second])
            qr = answer
            return answer.status == 200 && answer.header("x-wahost-served-by") == "node-a"
        }
        _ = try await rig.simulator.scanQRCode(try #require(qr?.object["qr"] as? String))
        try await eventually("t2 connected on node A") { try await isConnected(portA, "t2") }

        // A tenant's token never reaches another tenant through forwarding: the owner refuses it.
        let crossed = try await http("GET", portB, "/tenants/t2/session/groups", headers: auth)
        #expect(crossed.status == 403 && crossed.errorCode == "token_wrong_tenant" && crossed.header("x-wahost-served-by") == "node-a")
        // Forged forwarding is refused by the owner; a genuinely forwarded request is never forwarded again.
        let key = NodeForwardingKey(masterKey: try MasterKey(base64: rig.masterKey))
        let forged = signedHeaders(NodeForwardingKey(masterKey: MasterKey.generate()), node: "node-b", method: "GET", target: "/tenants/t1/session/groups", client: "127.0.0.1")
        let refused = try await http("GET", portA, "/tenants/t1/session/groups", headers: forged.merging(auth) { $1 })
        #expect(refused.status == 403 && refused.errorCode == "forward_forbidden")
        let looped = signedHeaders(key, node: "node-a", method: "GET", target: "/tenants/t1/session/groups", client: "127.0.0.1")
        let notAgain = try await http("GET", portB, "/tenants/t1/session/groups", headers: looped.merging(auth) { $1 })
        #expect(notAgain.status == 503 && notAgain.errorCode == "not_owned_here" && notAgain.header("retry-after") != nil, "\(notAgain.text)")
        #expect(((notAgain.object["error"] as? [String: Any])?["retry_after"] as? Int ?? 0) > 0)

        // The nodes table: both nodes, their addresses and the sessions each holds.
        try await eventually("both nodes listed with their sessions") {
            let listed = try await nodes(portB, operatorToken)
            return listed["node-a"]?["sessions"] as? Int == 2 && listed["node-b"]?["sessions"] as? Int == 0
                && listed["node-a"]?["live"] as? Bool == true && listed["node-b"]?["live"] as? Bool == true
        }
        let listed = try await nodes(portB, operatorToken)
        #expect(listed["node-a"]?["advertise_url"] as? String == "http://127.0.0.1:\(portA)")
        #expect(listed["node-b"]?["advertise_url"] as? String == "http://127.0.0.1:\(portB)", "the default: the listen address")
        #expect(listed["node-a"]?["started_at"] is String && listed["node-a"]?["last_heartbeat"] is String)
        #expect(try await http("GET", portB, "/operator/nodes", headers: auth).status == 401)

        // Logout through B ends the session on A.
        let logout = try await http("POST", portB, "/tenants/t2/session/logout", headers: ["x-admin-token": second])
        #expect(logout.status == 200 && logout.header("x-wahost-served-by") == "node-a", "\(logout.text)")
        #expect(try await http("GET", portA, "/tenants/t2/session/status").object["state"] as? String == "logged_out")

        // The owner dies: an open stream through B ends, B answers 503 owner_unreachable, then the session moves to B.
        async let cut = readEventStream(portB, "/tenants/t1/events", headers: auth.merging(["last-event-id": "\(lastID)"]) { $1 }, seconds: 40)
        try await Task.sleep(for: .seconds(1))
        await nodeA.kill()
        let unreachable = try await http("GET", portB, "/tenants/t1/session/groups", headers: auth)
        #expect(unreachable.status == 503 && unreachable.errorCode == "owner_unreachable", "\(unreachable.text)")
        #expect(Int(unreachable.header("retry-after") ?? "") ?? 0 > 0)
        let ended = try await cut
        #expect(ended.status != 28, "the stream ended with its owner, not at curl's time limit")
        try await eventually(timeout: .seconds(25), "t1 moved to node B") {
            let groups = try await http("GET", portB, "/tenants/t1/session/groups", headers: auth)
            return groups.status == 200 && groups.header("x-wahost-served-by") == nil
        }
        try await eventually("node A listed as not live") {
            let listed = try await nodes(portB, operatorToken)
            return listed["node-a"]?["live"] as? Bool == false && listed["node-b"]?["sessions"] as? Int == 1
        }
        #expect(await rig.simulator.observed.peakConnectionsPerAccount[account] == 1, "never two connections for one account")

        // A node stopped with SIGTERM removes its row.
        let (nodeC, _) = try await rig.startServer { _ in ["--node-id", "node-c"] }
        try await eventually("node C listed") { try await nodes(portB, operatorToken)["node-c"]?["live"] as? Bool == true }
        await nodeC.stop()
        #expect(try await nodes(portB, operatorToken)["node-c"] == nil, "\(nodeC.output)")
    }
    @Test func aStoppingNodeEndsTheEventStreamsItServesOrRelays() async throws {
        guard ExternalTools.postgresEnabled else { return }
        let rig = try await APIRig()
        defer { Task { await rig.stopAll() } }
        rig.databaseURL = try await makePostgresDatabase()
        rig.extraEnvironment["WAHOST_BALANCE_MOVES_PER_MINUTE"] = "0"
        let token = try await rig.createTenant("t1").token
        let (nodeA, portA) = try await rig.startServer { ["--node-id", "node-a", "--advertise-url", "http://127.0.0.1:\($0)/"] }
        let (nodeB, portB) = try await rig.startServer { _ in ["--node-id", "node-b"] }
        _ = try await pairByQR(rig, port: portA, tenant: "t1", token: token)
        let auth = ["x-admin-token": token]
        try await eventually("node B forwards t1's requests to node A") {
            try await http("GET", portB, "/tenants/t1/session/status", headers: auth).header("x-wahost-served-by") == "node-a"
        }

        // Two streams whose clients stay: one B relays from A, one A serves itself. Each node's SIGTERM ends its
        // stream (the client resumes elsewhere with Last-Event-ID) instead of waiting on it until the watchdog.
        async let relayed = readEventStream(portB, "/tenants/t1/events", headers: auth, seconds: 150)
        async let direct = readEventStream(portA, "/tenants/t1/events", headers: auth, seconds: 150)
        try await Task.sleep(for: .seconds(2))
        await nodeB.stop()
        #expect(nodeB.process.terminationStatus == 0, "B stopped cleanly, not by its watchdog: \(nodeB.output.suffix(2_000))")
        let relayedEnd = try await relayed
        #expect(relayedEnd.status != 28 && relayedEnd.stdout.lowercased().contains("x-wahost-served-by: node-a"), "\(relayedEnd.stdout)")
        await nodeA.stop()
        #expect(nodeA.process.terminationStatus == 0, "A stopped cleanly, not by its watchdog: \(nodeA.output.suffix(2_000))")
        let directEnd = try await direct
        #expect(directEnd.status != 28 && directEnd.stdout.contains("wahost events of t1"), "\(directEnd.stdout)")
    }
}
