import App
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Tenancy
import TestSupport
import Testing

/// The security rules of issue 21 over real HTTP against the in-process application.
@Suite struct SecurityRulesTests {
    static let cheapHashing = Argon2id.Parameters(iterations: 1, memoryKiB: 1024, parallelism: 1)

    /// Opened services over a fresh data directory with cheap argon2; `adjust` changes the configuration first.
    static func openServices(_ adjust: (inout WahostConfiguration) -> Void = { _ in }) async throws -> WahostServices {
        var configuration = WahostConfiguration(port: 0, dataDirectory: try makeTemporaryDirectory())
        configuration.masterKeyBase64 = Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
        adjust(&configuration)
        return try await WahostServices.open(
            configuration, tenancyConfiguration: .init(hashParameters: cheapHashing), logger: Logger(label: "test"))
    }

    static let forwardedFor = HTTPField.Name("x-forwarded-for")!
    static let adminToken = HTTPField.Name("x-admin-token")!
    static let wrongToken = "wah_ghost_" + String(repeating: "A", count: 43)

    @Test("behind a trusted proxy, ten bad tokens lock out the forwarded client (per /64 for IPv6), not everyone")
    func trustedProxyForwardsTheClientAddress() async throws {
        let services = try await Self.openServices { $0.trustedProxies = [IPNetwork("127.0.0.0/8")!, IPNetwork("10.0.0.0/8")!] }
        let issued = try await services.tenants.createTenant(try TenantName("acme"), mfa: false, actor: "test")
        let app = try buildApplication(services: services, logger: Logger(label: "test"))
        try await app.test(.live) { client in
            // `groups` checks the token on every call (the session is not running, so the owner gets 409, never 401/429).
            func groups(_ token: String, from address: String) async throws -> HTTPResponse.Status {
                try await client.execute(
                    uri: "/tenants/acme/session/groups", method: .get, headers: [Self.adminToken: token, Self.forwardedFor: address]
                ) { $0.status }
            }
            for index in 0..<10 { #expect(try await groups(Self.wrongToken, from: "203.0.113.5, 10.1.1.\(index)") == .unauthorized) }
            let spare = "wah_spare_" + String(repeating: "A", count: 43)
            #expect(try await groups(spare, from: "203.0.113.5") == .tooManyRequests, "the attacker is locked out")
            #expect(try await groups(issued.adminToken.text, from: "198.51.100.9") == .conflict, "everyone else is not")
            // IPv6 clients are counted per /64: five guesses from each of two addresses lock the whole /64.
            for index in 0..<10 {
                let address = index.isMultiple(of: 2) ? "2001:db8:1:2::a" : "2001:db8:1:2:ffff::\(index)"
                _ = try await groups("wah_other_" + String(repeating: "B", count: 43), from: address)
            }
            #expect(try await groups(issued.adminToken.text, from: "2001:db8:1:2::77") == .tooManyRequests)
            #expect(try await groups(issued.adminToken.text, from: "2001:db8:1:3::77") == .conflict)
        }
        await services.close()
    }

    @Test("without --trusted-proxy, X-Forwarded-For is ignored: a guesser cannot dodge the lockout by inventing addresses")
    func forwardedForIsIgnoredFromUntrustedPeers() async throws {
        let services = try await Self.openServices()
        let app = try buildApplication(services: services, logger: Logger(label: "test"))
        try await app.test(.live) { client in
            for index in 0..<10 {
                let status = try await client.execute(
                    uri: "/tenants/acme/session/groups", method: .get,
                    headers: [Self.adminToken: "wah_g\(index)_" + String(repeating: "A", count: 43), Self.forwardedFor: "192.0.2.\(index)"]
                ) { $0.status }
                #expect(status == .unauthorized)
            }
            let locked = try await client.execute(
                uri: "/tenants/acme/session/groups", method: .get, headers: [Self.adminToken: Self.wrongToken, Self.forwardedFor: "192.0.2.99"]
            ) { $0.status }
            #expect(locked == .tooManyRequests)
        }
        await services.close()
    }
}
