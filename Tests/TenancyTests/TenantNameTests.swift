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
