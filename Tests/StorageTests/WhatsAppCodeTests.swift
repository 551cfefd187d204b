import Foundation
import Storage
import Tenancy
import TestSupport
import Testing

/// WhatsApp one-time codes over real repositories, on every backend, with time moved by hand.
@Suite struct WhatsAppCodeTests {
    let tenant = try! TenantName("alpha")
    let address = "192.0.2.7"

    func makeDirectory(_ store: any SystemStore, _ clock: ManualClock) -> TenantDirectory {
        let configuration = TenantDirectory.Configuration(
            hashParameters: TenantDirectoryTests.cheapHashing,
            lockoutPolicy: LockoutPolicy(maximumFailures: 100, window: .seconds(900), lockoutDuration: .seconds(900)))
        return TenantDirectory(repositories: store, masterKey: .generate(), configuration: configuration, now: { clock.now })
    }

    func actions(_ store: any SystemStore) async throws -> [String] {
        try await store.auditEvents(tenant: "alpha", limit: 100).map(\.action)
    }

    @Test(arguments: Backend.available)
    func aCodeUnlocksOnceBesideTheAuthenticatorAndIsStoredOnlyAsAHash(_ backend: Backend) async throws {
        let store = try await backend.makeStore()
        let clock = ManualClock()
        let directory = makeDirectory(store, clock)
        let issuedTenant = try await directory.createTenant(tenant, mfa: true, mfaNumber: "+15551234567", actor: "test")
        #expect(try await directory.tenant(named: tenant)?.mfaNumber == "15551234567", "the + is dropped")

        let issued = try await directory.issueWhatsAppCode(for: tenant, actor: "test", clientAddress: address)
        #expect(issued.code.count == 6 && issued.code.allSatisfy(\.isNumber) && issued.mfaNumber == "15551234567")
        #expect(issued.expiresAt == clock.now.addingTimeInterval(300))
        let stored = try #require(try await store.whatsAppCode(for: tenant))
        #expect(stored.hash.count == 32 && stored.hash != Array(issued.code.utf8))

        // The authenticator keeps working while a WhatsApp code is live, and does not use it up.
        let enrolment = try #require(issuedTenant.otp)
        let secret = try #require(Base32.decode(enrolment.secretBase32))
        try await directory.verifyOTP(for: tenant, code: TOTP(secret: secret).code(forStep: TOTP.step(at: clock.now)), clientAddress: address)
        try await directory.verifyOTP(for: tenant, code: issued.code, clientAddress: address)
        await #expect(throws: AuthenticationError(.otpInvalid), "single use") {
            try await directory.verifyOTP(for: tenant, code: issued.code, clientAddress: address)
        }
        #expect(try await store.whatsAppCode(for: tenant) == nil)
        let audit = try await store.auditEvents(tenant: "alpha", limit: 100)
        #expect(audit.map(\.action).contains("otp.whatsapp_used"))
        #expect(!audit.contains { ($0.detail ?? "").contains(issued.code) }, "the code is never audited")
        try await store.close()
    }

    @Test(arguments: Backend.available)
    func fiveWrongCodesVoidIt(_ backend: Backend) async throws {
        let store = try await backend.makeStore()
        let clock = ManualClock()
        let directory = makeDirectory(store, clock)
        _ = try await directory.createTenant(tenant, mfa: true, actor: "test")
        let issued = try await directory.issueWhatsAppCode(for: tenant, actor: "test", clientAddress: address)
        let wrong = issued.code == "000000" ? "000001" : "000000"
        for attempt in 1...5 {
            await #expect(throws: AuthenticationError(.otpInvalid)) { try await directory.verifyOTP(for: tenant, code: wrong, clientAddress: address) }
            #expect(try await store.whatsAppCode(for: tenant)?.wrongTries == (attempt < 5 ? attempt : nil))
        }
        await #expect(throws: AuthenticationError(.otpInvalid), "void after 5 wrong tries") {
            try await directory.verifyOTP(for: tenant, code: issued.code, clientAddress: address)
        }
        #expect(try await actions(store).contains("otp.whatsapp_voided"))
        try await store.close()
    }

    @Test(arguments: Backend.available)
    func aCodeExpiresAfterFiveMinutes(_ backend: Backend) async throws {
        let store = try await backend.makeStore()
        let clock = ManualClock()
        let directory = makeDirectory(store, clock)
        _ = try await directory.createTenant(tenant, mfa: true, actor: "test")

        var issued = try await directory.issueWhatsAppCode(for: tenant, actor: "test", clientAddress: address)
        clock.advance(299)
        try await directory.verifyOTP(for: tenant, code: issued.code, clientAddress: address)

        issued = try await directory.issueWhatsAppCode(for: tenant, actor: "test", clientAddress: address)
        clock.advance(300)
        await #expect(throws: AuthenticationError(.otpInvalid)) { try await directory.verifyOTP(for: tenant, code: issued.code, clientAddress: address) }
        #expect(try await store.whatsAppCode(for: tenant) == nil, "an expired code is deleted when tried")
        #expect(try await actions(store).filter { $0 == "otp.whatsapp_expired" }.count == 1)

        // One nobody tries is deleted (and audited) by the sweep.
        issued = try await directory.issueWhatsAppCode(for: tenant, actor: "test", clientAddress: address)
        #expect(try await directory.expireWhatsAppCodes(at: clock.now) == 0)
        clock.advance(300)
        #expect(try await directory.expireWhatsAppCodes(at: clock.now) == 1)
        #expect(try await actions(store).filter { $0 == "otp.whatsapp_expired" }.count == 2)
        await #expect(throws: AuthenticationError(.otpInvalid)) { try await directory.verifyOTP(for: tenant, code: issued.code, clientAddress: address) }
        try await store.close()
    }

    @Test(arguments: Backend.available)
    func requestsAreLimitedToOnePer30SecondsAndTenPerHour(_ backend: Backend) async throws {
        let store = try await backend.makeStore()
        let clock = ManualClock()
        let directory = makeDirectory(store, clock)
        _ = try await directory.createTenant(tenant, mfa: true, actor: "test")
        func refusal() async -> Int? {
            do {
                _ = try await directory.issueWhatsAppCode(for: tenant, actor: "test", clientAddress: address)
                return nil
            } catch {
                guard case .rateLimited(let seconds) = error.kind else { return -1 }
                return seconds
            }
        }
        #expect(await refusal() == nil)
        let first = clock.now
        clock.advance(10)
        #expect(await refusal() == 20, "the next one 30 s after the last")
        clock.advance(20)
        #expect(await refusal() == nil)
        for _ in 3...10 {
            clock.advance(30)
            #expect(await refusal() == nil)
        }
        clock.advance(30)
        let expected = Int(first.addingTimeInterval(3600).timeIntervalSince(clock.now).rounded(.up))
        #expect(await refusal() == expected, "the 11th within the hour waits for the first to leave the window")
        clock.advance(TimeInterval(expected))
        #expect(await refusal() == nil)
        #expect(try await actions(store).filter { $0 == "otp.whatsapp_refused" }.count == 2)
        try await store.close()
    }

    @Test(arguments: Backend.available)
    func theNumberIsCheckedAndOnlyMFATenantsGetCodes(_ backend: Backend) async throws {
        let store = try await backend.makeStore()
        let directory = makeDirectory(store, ManualClock())
        _ = try await directory.createTenant(tenant, mfa: true, actor: "test")
        let plain = try TenantName("plain")
        _ = try await directory.createTenant(plain, mfa: false, actor: "test")
        #expect(try await directory.setMFANumber("15550001111", for: tenant, actor: "test") == "15550001111")
        #expect(try await directory.tenant(named: tenant)?.mfaNumber == "15550001111")
        for bad in ["12ab5678", "123", "0155500011", "1555000111122223"] {
            await #expect(throws: TenancyError.self) { try await directory.setMFANumber(bad, for: tenant, actor: "test") }
        }
        #expect(try await directory.setMFANumber(nil, for: tenant, actor: "test") == nil)
        #expect(try await directory.tenant(named: tenant)?.mfaNumber == nil)
        let nobody = try TenantName("nobody")
        do {
            _ = try await directory.setMFANumber("15550001111", for: nobody, actor: "test")
            Issue.record("unknown tenant accepted")
        } catch {
            #expect(error.kind == .tenantNotFound)
        }
        do {
            _ = try await directory.issueWhatsAppCode(for: plain, actor: "test", clientAddress: address)
            Issue.record("a tenant without MFA got a code")
        } catch {
            #expect(error.kind == .mfaNotEnabled)
        }
        try await store.close()
    }

    @Test func codesAreSixUniformDigitsAndNumbersAreMasked() {
        var seen: Set<Character> = []
        for _ in 0..<2000 {
            let code = WhatsAppCode.generate()
            #expect(code.count == 6 && code.allSatisfy { $0.isASCII && $0.isNumber })
            seen.formUnion(code)
        }
        #expect(seen.count == 10)
        #expect(WhatsAppCode.masked("15551234567") == "+1•••••••4567")
        let issued = IssuedWhatsAppCode(code: "483920", hash: [], expiresAt: Date(), mfaNumber: nil)
        let text = issued.text(for: tenant, lifetime: .seconds(300))
        #expect(text.hasPrefix("wahost: 483 920 is your code for tenant alpha.") && text.contains("expires in 5 minutes"))
    }
}
