import App
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Tenancy
import TestSupport
import Testing
import WahostBasics

/// Dashboard sign-ins end when the credentials they were made with change: rotation, OTP reset, deletion.
@Suite struct DashboardRevocationTests {
    static let adminToken = HTTPField.Name("x-admin-token")!

    /// Signs in through the dashboard form; returns the `Cookie` header value.
    static func signIn(_ client: some TestClientProtocol, form: String) async throws -> String {
        let response = try await client.execute(
            uri: "/dashboard/sign-in", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
            body: ByteBuffer(string: form))
        #expect(response.status == .seeOther, "\(String(buffer: response.body))")
        let setCookie = try #require(response.headers[.setCookie])
        return String(setCookie.prefix { $0 != ";" })
    }

    static func get(_ client: some TestClientProtocol, _ uri: String, cookie: String) async throws -> TestResponse {
        try await client.execute(uri: uri, method: .get, headers: [.cookie: cookie])
    }

    /// True if the cookie still opens the tenant page; false if it leads back to the sign-in page.
    static func signedIn(_ client: some TestClientProtocol, cookie: String, page: String = "/dashboard/tenant") async throws -> Bool {
        let response = try await get(client, page, cookie: cookie)
        if response.status == .ok { return true }
        #expect(response.status == .seeOther && response.headers[.location] == "/dashboard/")
        let home = try await get(client, "/dashboard/", cookie: cookie)
        #expect(String(buffer: home.body).contains("sign-in"), "the old cookie gets the sign-in page")
        return false
    }

    @Test("a cookie made before rotate-token, reset-otp or delete-and-recreate gets the sign-in page after it")
    func rotationResetAndDeletionEndDashboardSessions() async throws {
        let services = try await SecurityRulesTests.openServices()
        let tenants = services.tenants
        let acme = try TenantName("acme")
        let operatorToken = try await tenants.issueOperatorToken(actor: "test")
        let issued = try await tenants.createTenant(acme, mfa: false, actor: "test")
        let app = try buildApplication(services: services, logger: Logger(label: "test"))
        try await app.test(.live) { client in
            // Rotation by another process (the CLI): the database changed, this node never heard of it.
            var cookie = try await Self.signIn(client, form: "kind=tenant&tenant=acme&token=\(issued.adminToken.text)")
            #expect(try await Self.signedIn(client, cookie: cookie))
            let rotated = try await tenants.rotateAdminToken(for: acme, actor: "cli")
            #expect(try await Self.signedIn(client, cookie: cookie) == false)

            // OTP reset through the operator API.
            cookie = try await Self.signIn(client, form: "kind=tenant&tenant=acme&token=\(rotated.text)")
            #expect(try await Self.signedIn(client, cookie: cookie))
            let reset = try await client.execute(
                uri: "/tenants/acme/reset-otp", method: .post, headers: [Self.adminToken: operatorToken.text]) { $0.status }
            #expect(reset == .ok)
            #expect(try await Self.signedIn(client, cookie: cookie) == false)

            // Deleted and re-created under the same name: the old owner's cookie controls nothing.
            let beta = try await tenants.createTenant(try TenantName("beta"), mfa: false, actor: "test")
            cookie = try await Self.signIn(client, form: "kind=tenant&tenant=beta&token=\(beta.adminToken.text)")
            try await services.deleteTenant(try TenantName("beta"), actor: "cli")
            _ = try await tenants.createTenant(try TenantName("beta"), mfa: false, actor: "test")
            #expect(try await Self.signedIn(client, cookie: cookie) == false)

            // The operator's sign-in ends with `operator rotate-token`.
            cookie = try await Self.signIn(client, form: "kind=operator&token=\(operatorToken.text)")
            #expect(try await Self.signedIn(client, cookie: cookie, page: "/dashboard/operator"))
            _ = try await tenants.issueOperatorToken(actor: "cli")
            #expect(try await Self.signedIn(client, cookie: cookie, page: "/dashboard/operator") == false)
        }
        await services.close()
    }

    @Test("rotation closes the tenant's open event streams: at once on this node, within seconds when done elsewhere")
    func rotationClosesEventStreams() async throws {
        let services = try await SecurityRulesTests.openServices()
        let tenants = services.tenants
        let acme = try TenantName("acme")
        let operatorToken = try await tenants.issueOperatorToken(actor: "test")
        let issued = try await tenants.createTenant(acme, mfa: false, actor: "test")
        let app = try buildApplication(services: services, logger: Logger(label: "test"))
        try await app.test(.live) { client in
            let cookie = try await Self.signIn(client, form: "kind=tenant&tenant=acme&token=\(issued.adminToken.text)")
            let stream = Task { try await Self.get(client, "/dashboard/events?tenant=acme", cookie: cookie) }
            // Time for the stream to open and send its first status (300 ms was too little at the start of a full run).
            try await Task.sleep(for: .milliseconds(1_500))
            // The test client has one connection, busy with the stream: the operator calls over another one.
            let port = try #require(client.port)
            let rotate = try await http("POST", port, "/tenants/acme/rotate-token", headers: ["x-admin-token": operatorToken.text])
            #expect(rotate.status == 200)
            let closed = try await Self.finishes(stream, within: .seconds(2))
            #expect(closed?.status == .ok)
            #expect(closed.map { String(buffer: $0.body).contains("event: status") } == true)

            // Rotated by another process: the stream notices on its next re-check.
            let token = try await tenants.rotateAdminToken(for: acme, actor: "test")
            let second = try await Self.signIn(client, form: "kind=tenant&tenant=acme&token=\(token.text)")
            let elsewhere = Task { try await Self.get(client, "/dashboard/events?tenant=acme", cookie: second) }
            try await Task.sleep(for: .milliseconds(300))
            _ = try await tenants.rotateAdminToken(for: acme, actor: "cli")
            #expect(try await Self.finishes(elsewhere, within: .seconds(10)) != nil, "stream closed after a rotation elsewhere")
        }
        await services.close()
    }

    /// The task's response if it finishes within `limit`, else nil (and the task is cancelled).
    static func finishes<Value: Sendable>(_ task: Task<Value, any Error>, within limit: Duration) async throws -> Value? {
        // Not a task group: it would wait for a task that never ends (a stream left open), and hang the run.
        do {
            return try await Deadline.run(within: limit, { try await task.value }) { _ in StreamStillOpen() }
        } catch is StreamStillOpen {
            task.cancel()
            return nil
        }
    }

    /// A stream that did not end in time.
    struct StreamStillOpen: Error {}
}
