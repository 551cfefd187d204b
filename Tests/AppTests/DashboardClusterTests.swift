import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import TestSupport
import Testing

/// Dashboard sign-ins live in the system database: two real `wahost serve` processes on one database (a shared
/// SQLite data directory, or PostgreSQL) accept each other's cookies, and a sign-in ended on one ends on both.
@Suite(.serialized) struct DashboardClusterTests {
    /// One request to the node on `port`, over a connection of its own; redirects are not followed. `extra` headers, e.g. `Origin`.
    static func send(
        _ port: Int, _ method: HTTPRequest.Method, _ path: String, cookie: String? = nil, form: String? = nil, extra: [String: String] = [:]
    ) async throws -> TestClient.Response {
        var headers: HTTPFields = [:]
        for (name, value) in extra { headers[HTTPField.Name(name)!] = value }
        if let cookie { headers[.cookie] = cookie }
        if form != nil { headers[.contentType] = "application/x-www-form-urlencoded" }
        let request = TestClient.Request(path, method: method, authority: "127.0.0.1:\(port)", headers: headers, body: form.map { ByteBuffer(string: $0) })
        return try await TestClient.withClient(host: "127.0.0.1", port: port) { try await $0.execute(request) }
    }

    /// Signs in through the dashboard form on `port`; returns the `Cookie` header value.
    static func signIn(_ port: Int, form: String) async throws -> String {
        let response = try await send(port, .post, "/dashboard/sign-in", form: form)
        #expect(response.head.status == .seeOther, "\(String(buffer: response.body ?? ByteBuffer()))")
        let setCookie = try #require(response.head.headerFields[.setCookie])
        #expect(setCookie.contains("HttpOnly") && setCookie.contains("Max-Age=28800"))
        return String(setCookie.prefix { $0 != ";" })
    }

    /// The CSRF token of the page at `path` on `port` if the cookie opens it (200); nil if it leads back to sign-in.
    static func csrf(_ port: Int, _ path: String, cookie: String) async throws -> String? {
        let response = try await send(port, .get, path, cookie: cookie)
        guard response.head.status == .ok else {
            #expect(response.head.status == .seeOther && response.head.headerFields[.location] == "/dashboard/")
            return nil
        }
        let page = String(buffer: response.body ?? ByteBuffer())
        let field = try #require(page.range(of: #"name="csrf" value="[^"]+""#, options: .regularExpression).map { String(page[$0]) })
        return String(field.dropFirst(#"name="csrf" value=""#.count).dropLast())
    }

    @Test(arguments: [false, true])
    func aSignInMadeOnOneNodeWorksAndEndsOnEvery(postgres: Bool) async throws {
        if postgres && !ExternalTools.postgresEnabled { return }
        let rig = try await APIRig()
        defer { Task { await rig.stopAll() } }
        if postgres { rig.databaseURL = try await makePostgresDatabase() }
        let (token, _) = try await rig.createTenant("acme")
        let rotated = try await WahostBinary.runDetached(["operator", "rotate-token", "--data-dir", rig.dataDirectory], environment: rig.environment)
        let operatorToken = try #require(try WahostBinary.json(rotated)["operator_token"] as? String)
        var (nodeA, portA) = try await rig.startServer()
        let (_, portB) = try await rig.startServer()

        // Signed in on A: B opens the page with the same cookie, and its CSRF token is the one A put in the forms.
        let tenantCookie = try await Self.signIn(portA, form: "kind=tenant&tenant=acme&token=\(token)")
        let csrfOnA = try #require(try await Self.csrf(portA, "/dashboard/tenant", cookie: tenantCookie))
        let csrfOnB = try #require(try await Self.csrf(portB, "/dashboard/tenant", cookie: tenantCookie), "node B accepts node A's cookie")
        #expect(csrfOnA == csrfOnB)

        // The operator signed in on A creates a tenant through a form posted to B; a forged token is refused there.
        let operatorCookie = try await Self.signIn(portA, form: "kind=operator&token=\(operatorToken)")
        let operatorCSRF = try #require(try await Self.csrf(portA, "/dashboard/operator", cookie: operatorCookie))
        let forged = try await Self.send(portB, .post, "/dashboard/operator/tenants", cookie: operatorCookie, form: "csrf=\(csrfOnA)&name=forged&mfa=no")
        #expect(forged.head.status == .forbidden, "another sign-in's CSRF token does not pass")
        let created = try await Self.send(portB, .post, "/dashboard/operator/tenants", cookie: operatorCookie, form: "csrf=\(operatorCSRF)&name=beta&mfa=no")
        #expect(created.head.status == .ok)
        #expect(String(buffer: created.body ?? ByteBuffer()).contains("wah_beta_"), "the new tenant's token is shown once")
        #expect(try await http("GET", portA, "/tenants/beta/session/status").status == 200)
        #expect(try await http("GET", portA, "/tenants/forged/session/status").status == 404)

        // A restart of A signs no one out.
        await nodeA.stop()
        (nodeA, portA) = try await rig.startServer()
        #expect(try await Self.csrf(portA, "/dashboard/tenant", cookie: tenantCookie) == csrfOnA, "the restarted node keeps the sign-in")

        // Signed out on B: a live page on A closes and A refuses the cookie.
        let stream = Task { try await Self.send(portA, .get, "/dashboard/events?tenant=acme", cookie: tenantCookie) }
        try await Task.sleep(for: .milliseconds(300))
        let signOut = try await Self.send(portB, .post, "/dashboard/sign-out", cookie: tenantCookie, form: "csrf=\(csrfOnB)")
        #expect(signOut.head.status == .seeOther)
        #expect(try await Self.csrf(portA, "/dashboard/tenant", cookie: tenantCookie) == nil, "signed out on B, refused on A")
        #expect(try await DashboardRevocationTests.finishes(stream, within: .seconds(15)) != nil, "A's live page closed after the sign-out on B")

        // Rotating the tenant token through A ends a fresh sign-in on both nodes.
        let again = try await Self.signIn(portB, form: "kind=tenant&tenant=acme&token=\(token)")
        #expect(try await Self.csrf(portA, "/dashboard/tenant", cookie: again) != nil)
        let rotate = try await http("POST", portA, "/tenants/acme/rotate-token", headers: ["x-admin-token": operatorToken])
        #expect(rotate.status == 200)
        #expect(try await Self.csrf(portA, "/dashboard/tenant", cookie: again) == nil)
        #expect(try await Self.csrf(portB, "/dashboard/tenant", cookie: again) == nil)
        #expect(try await Self.csrf(portB, "/dashboard/operator", cookie: operatorCookie) != nil, "the operator's sign-in is untouched")
    }
}
