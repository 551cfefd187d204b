import App
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Tenancy
import TestSupport
import Testing

@testable import AdminAPI

/// Dashboard sessions and their live streams are bounded per principal and per session.
@Suite struct DashboardLimitsTests {
    @Test("signing in again and again pushes out only one's own oldest sessions, never another tenant's")
    func sessionCapIsPerPrincipal() async throws {
        let services = try await SecurityRulesTests.openServices()
        let acme = try await services.tenants.createTenant(try TenantName("acme"), mfa: false, actor: "test")
        let beta = try await services.tenants.createTenant(try TenantName("beta"), mfa: false, actor: "test")
        let app = try buildApplication(services: services, logger: Logger(label: "test"))
        try await app.test(.live) { client in
            let betaCookie = try await DashboardRevocationTests.signIn(client, form: "kind=tenant&tenant=beta&token=\(beta.adminToken.text)")
            var acmeCookies: [String] = []
            for _ in 0..<25 {
                acmeCookies.append(try await DashboardRevocationTests.signIn(client, form: "kind=tenant&tenant=acme&token=\(acme.adminToken.text)"))
            }
            #expect(try await DashboardRevocationTests.signedIn(client, cookie: betaCookie), "another tenant's sign-in survives")
            #expect(try await DashboardRevocationTests.signedIn(client, cookie: acmeCookies[24]))
            #expect(try await DashboardRevocationTests.signedIn(client, cookie: acmeCookies[0]) == false, "the oldest own sign-in is dropped")
        }
        await services.close()
    }

    @Test("one tenant's sign-ins beyond its limit push out only its own oldest; ending them all leaves another tenant's")
    func oneTenantCannotPushOutAnother() async throws {
        let services = try await SecurityRulesTests.openServices()
        let acmeName = try TenantName("acme")
        let betaName = try TenantName("beta")
        _ = try await services.tenants.createTenant(acmeName, mfa: false, actor: "test")
        _ = try await services.tenants.createTenant(betaName, mfa: false, actor: "test")
        let signIns = services.dashboardSignIns
        let beta = try await signIns.create(for: .tenant(betaName), generation: try #require(try await services.tenants.credentialGeneration(ofTenant: betaName)))
        let generation = try #require(try await services.tenants.credentialGeneration(ofTenant: acmeName))
        var acme: [DashboardSignIn] = []
        for _ in 0..<(DashboardSignIns.perPrincipalLimit + 5) { acme.append(try await signIns.create(for: .tenant(acmeName), generation: generation)) }
        #expect(try await signIns.signIn(id: beta.id) != nil, "beta is still signed in")
        #expect(try await signIns.signIn(id: acme[4].id) == nil, "acme's 5 oldest are gone")
        #expect(try await signIns.signIn(id: acme[5].id) != nil)
        try await signIns.end(principal: .tenant(acmeName))
        #expect(try await signIns.signIn(id: acme.last?.id) == nil)
        #expect(try await signIns.signIn(id: beta.id) != nil)
        await services.close()
    }

    @Test("a session opens at most 4 live streams, and signing out closes them")
    func streamsAreCappedAndClosedAtSignOut() async throws {
        let services = try await SecurityRulesTests.openServices()
        let acme = try await services.tenants.createTenant(try TenantName("acme"), mfa: false, actor: "test")
        let app = try buildApplication(services: services, logger: Logger(label: "test"))
        try await app.test(.live) { client in try await Self.capAndSignOut(client, token: acme.adminToken.text) }
        await services.close()
    }

    /// Opens 4 streams on connections of their own (a browser tab each), is refused a 5th, signs out, sees all 4 end.
    static func capAndSignOut(_ client: some TestClientProtocol, token: String) async throws {
        let port = try #require(client.port)
        let cookie = try await DashboardRevocationTests.signIn(client, form: "kind=tenant&tenant=acme&token=\(token)")
        let page = String(buffer: try await DashboardRevocationTests.get(client, "/dashboard/tenant", cookie: cookie).body)
        let field = try #require(page.range(of: #"name="csrf" value="[^"]+""#, options: .regularExpression).map { String(page[$0]) })
        let csrf = String(field.dropFirst(#"name="csrf" value=""#.count).dropLast())
        // Each stream is read by curl in the background and counts once its first event arrived (the server registers
        // a stream before it sends that); a stream or a refusal that does not come fails within its bound, never hangs.
        var streams: [DashboardForwardingTests.LiveStream] = []
        defer { streams.forEach { $0.stop() } }
        for _ in 0..<4 {
            let stream = try DashboardForwardingTests.LiveStream(port, "/dashboard/events?tenant=acme", cookie: cookie)
            streams.append(stream)
            try await eventually(timeout: .seconds(20), "stream \(streams.count) open") { stream.text.contains("data:") }
        }
        let fifth = try await runProcessDetached(
            "/usr/bin/curl",
            ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", "-H", "Cookie: \(cookie)", "http://127.0.0.1:\(port)/dashboard/events?tenant=acme"])
        #expect(fifth.stdout == "429", "the fifth stream is refused")
        let signOut = try await client.execute(
            uri: "/dashboard/sign-out", method: .post,
            headers: [.contentType: "application/x-www-form-urlencoded", .cookie: cookie], body: ByteBuffer(string: "csrf=\(csrf)"))
        #expect(signOut.status == .seeOther)
        for stream in streams {
            try await eventually(timeout: .seconds(10), "the stream ended with the sign-out") { !stream.process.isRunning }
            #expect(stream.process.terminationStatus == 0 && stream.text.hasPrefix("HTTP/1.1 200"), "\(stream.text.prefix(200))")
        }
    }
}
