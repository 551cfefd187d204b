import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Tenancy
import TestSupport
import Testing
import WhatsAppSimulator

/// The dashboard follows the session's owner: two `wahost serve` on one PostgreSQL, each its own data directory, the
/// sessions on node A, and every tenant view opened through node B answered by A, with sign-in, CSRF and tenant checked there.
@Suite(.serialized) struct DashboardForwardingTests {
    /// A server-sent event stream read by curl in the background (response headers first), readable while it runs.
    final class LiveStream: @unchecked Sendable {
        let process = Process()
        let outputPath: String

        init(_ port: Int, _ path: String, cookie: String) throws {
            outputPath = try makeTemporaryDirectory() + "/stream.txt"
            _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
            process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
            process.arguments = ["-sN", "-D", "-", "--max-time", "90", "-H", "Cookie: \(cookie)", "http://127.0.0.1:\(port)\(path)"]
            process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: outputPath))
            try process.run()
        }

        var text: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }

        /// Ends curl without waiting for it (it exits at once on SIGTERM).
        func stop() {
            if process.isRunning { process.terminate() }
        }
    }

    static let servedBy = HTTPField.Name("x-wahost-served-by")!

    static func body(_ response: TestClient.Response) -> String { String(buffer: response.body ?? ByteBuffer()) }

    @Test func theTenantPageItsLiveStreamAndItsFormsAnswerFromTheOwner() async throws {
        guard ExternalTools.postgresEnabled else { return }
        let rig = try await APIRig()
        defer { Task { await rig.stopAll() } }
        rig.databaseURL = try await makePostgresDatabase()
        // Node B reads the leases every 5 s; a killed owner's lease stays live long enough to see B say so.
        rig.extraEnvironment["WAHOST_LEASE_TTL"] = "15"
        // Both sessions stay on node A: the test is about forwarding, not balancing (ClusterTests).
        rig.extraEnvironment["WAHOST_BALANCE_MOVES_PER_MINUTE"] = "0"
        let first = try await rig.createTenant("t1").token
        let second = try await rig.createTenant("t2").token
        let rotated = try await WahostBinary.runDetached(["operator", "rotate-token", "--data-dir", rig.dataDirectory], environment: rig.environment)
        let operatorToken = try #require(try WahostBinary.json(rotated)["operator_token"] as? String)
        let (nodeA, portA) = try await ClusterTests().startNode(rig, "node-a")
        let (_, portB) = try await ClusterTests().startNode(rig, "node-b")
        let account = try await pairByQR(rig, port: portA, tenant: "t1", token: first)
        _ = try await pairByQR(rig, port: portA, tenant: "t2", token: second)
        let dashboard = DashboardClusterTests.self
        let origin = ["origin": "http://127.0.0.1:\(portB)"]

        // A tenant signed in on B, the operator on A: B's tenant page is A's, with the session connected and its groups.
        let tenantCookie = try await dashboard.signIn(portB, form: "kind=tenant&tenant=t1&token=\(first)")
        let operatorCookie = try await dashboard.signIn(portA, form: "kind=operator&token=\(operatorToken)")
        // Node B learns each lease at its next scan.
        try await eventually("node B forwards both tenant pages to node A") {
            let page = try await dashboard.send(portB, .get, "/dashboard/tenant", cookie: tenantCookie)
            let other = try await dashboard.send(portB, .get, "/dashboard/tenant?tenant=t2", cookie: operatorCookie)
            return page.head.status == .ok && [page, other].allSatisfy { $0.head.headerFields[Self.servedBy] == "node-a" }
        }
        let page = Self.body(try await dashboard.send(portB, .get, "/dashboard/tenant", cookie: tenantCookie))
        #expect(page.contains(#"data-state="connected""#) && page.contains(account), "\(page)")
        #expect(!page.contains("Groups could not be loaded") && !page.contains("Groups are listed by"), "the owner lists the groups")
        let operatorView = try await dashboard.send(portB, .get, "/dashboard/tenant?tenant=t2", cookie: operatorCookie)
        #expect(operatorView.head.headerFields[Self.servedBy] == "node-a" && Self.body(operatorView).contains(#"data-state="connected""#))
        let groups = try await dashboard.send(portB, .get, "/dashboard/groups?tenant=t1", cookie: tenantCookie)
        #expect(groups.head.status == .ok && groups.head.headerFields[Self.servedBy] == "node-a")
        let csrf = try #require(try await dashboard.csrf(portB, "/dashboard/tenant", cookie: tenantCookie))

        // The live stream through B is A's, and stays open for what happens next.
        let stream = try LiveStream(portB, "/dashboard/events?tenant=t1", cookie: tenantCookie)
        defer { stream.stop() }
        try await eventually("the stream through B carries A's status") {
            stream.text.lowercased().contains("x-wahost-served-by: node-a") && stream.text.contains(#""state":"connected""#)
        }

        // "Send a text" through B reaches the peer from t1's account; the origin check passes on A for B's origin.
        let text = "csrf=\(csrf)&tenant=t1&to=15557770002&text=via+b"
        let sent = try await dashboard.send(portB, .post, "/dashboard/messages/send", cookie: tenantCookie, form: text, extra: origin)
        #expect(sent.head.status == .ok && sent.head.headerFields[Self.servedBy] == "node-a", "\(Self.body(sent))")
        #expect(Self.body(sent).contains("Sent to"))
        let inbox = await rig.simulator.received(byPeer: "15557770002")
        #expect(inbox.map(\.text) == ["via b"] && inbox.allSatisfy { $0.from.hasPrefix(account + ":") })

        // A forwarded form is checked by the owner: a wrong CSRF token, another site's origin, another tenant all refused.
        let logout = "csrf=\(csrf)&tenant=t1&confirm=yes"
        let stale = try await dashboard.send(
            portB, .post, "/dashboard/logout", cookie: tenantCookie, form: "csrf=x\(csrf)&tenant=t1&confirm=yes", extra: origin)
        #expect(stale.head.status == .forbidden && stale.head.headerFields[Self.servedBy] == "node-a" && Self.body(stale).contains("csrf_invalid"))
        let crossSite = try await dashboard.send(
            portB, .post, "/dashboard/logout", cookie: tenantCookie, form: logout, extra: ["origin": "https://evil.example"])
        #expect(crossSite.head.status == .forbidden && Self.body(crossSite).contains("cross_origin"))
        let otherTenant = try await dashboard.send(
            portB, .post, "/dashboard/logout", cookie: tenantCookie, form: "csrf=\(csrf)&tenant=t2&confirm=yes", extra: origin)
        #expect(otherTenant.head.status == .forbidden && Self.body(otherTenant).contains("token_wrong_tenant"), "\(Self.body(otherTenant))")
        // A made-up forwarding signature is refused by the owner before the form is read.
        let forgedHeaders = ClusterForwardingTests().signedHeaders(
            NodeForwardingKey(masterKey: MasterKey.generate()), node: "node-b", method: "POST", target: "/dashboard/logout", body: logout,
            client: "127.0.0.1")
        let forged = try await dashboard.send(portA, .post, "/dashboard/logout", cookie: tenantCookie, form: logout, extra: forgedHeaders)
        #expect(forged.head.status == .forbidden && Self.body(forged).contains("forward_forbidden"))
        #expect(try await isConnected(portA, "t1"), "no refused form touched a session")
        #expect(try await isConnected(portA, "t2"))

        // Logout through B: A logs the session out, and the open stream through B shows it.
        let loggedOut = try await dashboard.send(portB, .post, "/dashboard/logout", cookie: tenantCookie, form: logout, extra: origin)
        #expect(loggedOut.head.status == .ok && loggedOut.head.headerFields[Self.servedBy] == "node-a", "\(Self.body(loggedOut))")
        #expect(Self.body(loggedOut).contains("Logged out."))
        try await eventually("the stream through B shows the logout") { stream.text.contains(#""state":"logged_out""#) }
        #expect(try await http("GET", portA, "/tenants/t1/session/status").object["state"] as? String == "logged_out")

        // The owner dies: a stream through B ends with it, and B's pages say so in words, not in JSON.
        let cut = try LiveStream(portB, "/dashboard/events?tenant=t2", cookie: operatorCookie)
        defer { cut.stop() }
        try await eventually("t2's stream through B is open") { cut.text.contains("event: status") }
        await nodeA.kill()
        let unreachable = try await dashboard.send(portB, .get, "/dashboard/tenant?tenant=t2", cookie: operatorCookie)
        let message = Self.body(unreachable)
        #expect(unreachable.head.status == .serviceUnavailable && unreachable.head.headerFields[.contentType]?.hasPrefix("text/html") == true)
        #expect(message.contains("The node running this session (node-a) cannot be reached right now"), "\(message)")
        #expect(Int(unreachable.head.headerFields[.retryAfter] ?? "") ?? 0 > 0)
        let operatorCSRF = try #require(try await dashboard.csrf(portB, "/dashboard/operator", cookie: operatorCookie))
        let posted = try await dashboard.send(
            portB, .post, "/dashboard/pairing/start", cookie: operatorCookie, form: "csrf=\(operatorCSRF)&tenant=t2", extra: origin)
        #expect(posted.head.status == .serviceUnavailable && Self.body(posted).contains("<h1>t2</h1>"), "a form's answer is the tenant's page")
        #expect(Self.body(posted).contains("cannot be reached right now"))
        try await eventually(timeout: .seconds(5), "the stream through B ended with its owner") { !cut.process.isRunning }
    }
}
