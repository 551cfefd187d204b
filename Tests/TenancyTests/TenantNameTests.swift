import Testing

@testable import Tenancy

@Suite struct TenantNameTests {
    @Test(arguments: ["a", "default", "acme-42", "0", String(repeating: "x", count: 64)])
    func acceptsValidNames(_ text: String) throws {
        #expect(try TenantName(text).rawValue == text)
    }

    @Test(arguments: ["", "../x", "A", "acme_corp", "a b", "-lead", "ü", "a/b", ".", String(repeating: "x", count: 65)])
    func rejectsInvalidNames(_ text: String) {
        #expect(throws: TenantNameError.self) { try TenantName(text) }
    }

    @Test func reasonsAreClear() {
        #expect(throws: TenantNameError.empty) { try TenantName("") }
        do {
            _ = try TenantName("../x")
            Issue.record("accepted ../x")
        } catch {
            #expect(error.description.contains("a-z"))
        }
    }
}

@Suite struct AdminTokenTests {
    @Test func generatedTokensNameTheirTenantAndParse() throws {
        let tenant = try TenantName("acme-1")
        let token = AdminToken.generate(for: tenant)
        #expect(token.text.hasPrefix("wah_acme-1_"))
        #expect(token.text.count == "wah_acme-1_".count + 43)
        #expect(AdminToken.parse(token.text)?.tenant == tenant)
        #expect(AdminToken.generate(for: tenant).text != token.text)
    }

    @Test func operatorTokensParseWithoutTenant() {
        let token = AdminToken.generateOperator()
        #expect(token.text.hasPrefix("wahop_"))
        let parsed = AdminToken.parse(token.text)
        #expect(parsed != nil && parsed?.tenant == nil)
    }

    @Test(arguments: ["", "wah_", "wah_acme", "wah_acme_short", "wah_ACME_" + String(repeating: "a", count: 43), "bearer x",
        "wah_acme_" + String(repeating: "a", count: 42) + "!", String(repeating: "w", count: 10_000)])
    func rejectsMalformedTokens(_ text: String) {
        #expect(AdminToken.parse(text) == nil)
    }
}

@Suite struct IPAddressTests {
    @Test func parsesIPv4AndIPv6AndMapsIPv4InIPv6() throws {
        #expect(try #require(IPAddress("192.0.2.7")).description == "192.0.2.7")
        #expect(try #require(IPAddress("[2001:DB8::1]")).description == "2001:db8::1")
        #expect(try #require(IPAddress("::ffff:192.0.2.7")).description == "192.0.2.7")
        #expect(IPAddress("fe80::1%eth0") != nil)
        for junk in ["", "unknown", "192.0.2", "1.2.3.4.5", "2001:db8::1::2", "example.com"] { #expect(IPAddress(junk) == nil, "\(junk)") }
    }

    @Test func ipv6ClientsAreGroupedByTheir64() throws {
        #expect(try #require(IPAddress("2001:db8:1:2:aaaa::1")).lockoutGroup == "2001:db8:1:2::/64")
        #expect(try #require(IPAddress("2001:db8:1:2:bbbb::2")).lockoutGroup == "2001:db8:1:2::/64")
        #expect(try #require(IPAddress("2001:db8:1:3::1")).lockoutGroup == "2001:db8:1:3::/64")
        #expect(try #require(IPAddress("192.0.2.7")).lockoutGroup == "192.0.2.7")
    }

    @Test func networksContainTheirAddressesOnly() throws {
        let private10 = try #require(IPNetwork("10.0.0.0/8"))
        #expect(private10.contains(try #require(IPAddress("10.200.1.1"))))
        #expect(!private10.contains(try #require(IPAddress("11.0.0.1"))))
        #expect(!private10.contains(try #require(IPAddress("::ffff:11.0.0.1"))))
        let single = try #require(IPNetwork("127.0.0.1"))
        #expect(single.prefixLength == 32)
        #expect(single.contains(try #require(IPAddress("127.0.0.1"))))
        let v6 = try #require(IPNetwork("fd00::/8"))
        #expect(v6.contains(try #require(IPAddress("fd12::1"))))
        #expect(!v6.contains(try #require(IPAddress("10.0.0.1"))))
        for junk in ["10.0.0.0/33", "10.0.0.0/-1", "fd00::/129", "x/8", "10.0.0.0/"] { #expect(IPNetwork(junk) == nil, "\(junk)") }
    }
}
