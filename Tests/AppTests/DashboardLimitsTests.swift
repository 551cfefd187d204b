import App
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Tenancy
import TestSupport
import Testing

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
}
