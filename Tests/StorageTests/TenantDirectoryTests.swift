import Foundation
import Storage
import Tenancy
import TestSupport
import Testing

/// A clock tests move by hand.
final class ManualClock: @unchecked Sendable {
    private let lock = NSLock()
    private var current = Date(timeIntervalSince1970: 1_800_000_000)
    var now: Date { lock.withLock { current } }
    func advance(_ seconds: TimeInterval) { lock.withLock { current = current.addingTimeInterval(seconds) } }
}

/// Tenancy's rules over real repositories, on every backend.
@Suite struct TenantDirectoryTests {
    static let cheapHashing = Argon2id.Parameters(iterations: 1, memoryKiB: 1024, parallelism: 1)

    func makeDirectory(
        store: any SystemStore, key: MasterKey = .generate(), clock: ManualClock? = nil, lockout: LockoutPolicy = .standard
    ) -> TenantDirectory {
        let configuration = TenantDirectory.Configuration(hashParameters: Self.cheapHashing, lockoutPolicy: lockout)
        if let clock { return TenantDirectory(repositories: store, masterKey: key, configuration: configuration, now: { clock.now }) }
        return TenantDirectory(repositories: store, masterKey: key, configuration: configuration)
    }

    @Test(arguments: Backend.available)
    func createIssuesATokenThatAuthenticates(_ backend: Backend) async throws {
        let store = try await backend.makeStore()
        let directory = makeDirectory(store: store)
        let name = try TenantName("acme")
        let issued = try await directory.createTenant(name, mfa: true, actor: "test")
        #expect(issued.otp?.secretBase32.count == 32)
        #expect(try await directory.authenticateTenant(token: issued.adminToken.text, clientAddress: "127.0.0.1") == name)
        #expect(try await directory.authenticateTenant(token: issued.adminToken.text, clientAddress: "127.0.0.1") == name)
        await #expect(throws: AuthenticationError(.tokenMissing)) { try await directory.authenticateTenant(token: nil, clientAddress: "a") }
        await #expect(throws: AuthenticationError(.tokenInvalid)) {
            try await directory.authenticateTenant(token: "wah_acme_" + String(repeating: "A", count: 43), clientAddress: "a")
        }
        await #expect(throws: AuthenticationError(.tokenInvalid)) { try await directory.authenticateTenant(token: "garbage", clientAddress: "a") }
        do {
            _ = try await directory.createTenant(name, mfa: false, actor: "test")
            Issue.record("duplicate created")
        } catch {
            #expect(error.kind == .tenantExists)
        }
        let stored = try #require(try await store.adminTokenHash(for: name))
        #expect(stored.hasPrefix("$argon2id$") && !stored.contains(issued.adminToken.text))
        let actions = try await store.auditEvents(tenant: "acme", limit: 10).map(\.action)
        #expect(actions.contains("tenant.create") && actions.contains("auth.token_invalid"))
        try await store.close()
    }

    @Test(arguments: Backend.available)
    func existenceIsRememberedBrieflyAndForgottenAtOnceOnLocalDeletion(_ backend: Backend) async throws {
        let store = try await backend.makeStore()
        let key = MasterKey.generate()
        let clock = ManualClock()
        let here = makeDirectory(store: store, key: key, clock: clock)
        let elsewhere = makeDirectory(store: store, key: key, clock: clock)  // another node sharing the database
        let acme = try TenantName("acme")
        let beta = try TenantName("beta")
        #expect(try await here.exists(acme) == false)
        _ = try await elsewhere.createTenant(acme, mfa: false, actor: "test")
        #expect(try await here.exists(acme), "a miss is not remembered")
        _ = try await here.createTenant(beta, mfa: false, actor: "test")
        #expect(try await here.exists(beta))
        #expect(try await elsewhere.exists(beta))

        // Deleted here: gone here at once.
        try await here.deleteTenant(beta, actor: "test")
        #expect(try await here.exists(beta) == false)
        // Deleted by another node: this one trusts what it saw for at most knownTenantLifetime (5 s).
        #expect(try await elsewhere.exists(beta), "remembered")
        clock.advance(5)
        #expect(try await elsewhere.exists(beta) == false)
        #expect(try await elsewhere.exists(acme), "re-read from storage")
        try await store.close()
    }

    @Test(arguments: Backend.available)
    func rotationInvalidatesTheOldTokenAtOnceIncludingOtherProcessesCaches(_ backend: Backend) async throws {
        let store = try await backend.makeStore()
        let key = MasterKey.generate()
        let here = makeDirectory(store: store, key: key)
        let elsewhere = makeDirectory(store: store, key: key)  // another process sharing the database
        let name = try TenantName("acme")
        let old = try await here.createTenant(name, mfa: false, actor: "test").adminToken
        // Both caches now hold the old token.
        _ = try await here.authenticateTenant(token: old.text, clientAddress: "1.1.1.1")
        _ = try await elsewhere.authenticateTenant(token: old.text, clientAddress: "1.1.1.1")
        let new = try await here.rotateAdminToken(for: name, actor: "test")
        await #expect(throws: AuthenticationError(.tokenInvalid)) { try await here.authenticateTenant(token: old.text, clientAddress: "1.1.1.1") }
        await #expect(throws: AuthenticationError(.tokenInvalid)) {
            try await elsewhere.authenticateTenant(token: old.text, clientAddress: "1.1.1.1")
        }
        #expect(try await here.authenticateTenant(token: new.text, clientAddress: "1.1.1.1") == name)
        #expect(try await elsewhere.authenticateTenant(token: new.text, clientAddress: "1.1.1.1") == name)
        let ghost = try TenantName("ghost")
        do {
            _ = try await here.rotateAdminToken(for: ghost, actor: "test")
            Issue.record("rotated a missing tenant")
        } catch {
            #expect(error.kind == .tenantNotFound)
        }
        try await store.close()
    }

    @Test(arguments: Backend.available)
    func lockoutPerAddressAndTenantAndItsExpiry(_ backend: Backend) async throws {
        let store = try await backend.makeStore()
        let clock = ManualClock()
        let policy = LockoutPolicy(maximumFailures: 3, window: .seconds(60), lockoutDuration: .seconds(120))
        let directory = makeDirectory(store: store, clock: clock, lockout: policy)
        let acme = try TenantName("acme")
        let token = try await directory.createTenant(acme, mfa: false, actor: "test").adminToken
        let beta = try await directory.createTenant(try TenantName("beta"), mfa: false, actor: "test").adminToken
        let wrong = "wah_acme_" + String(repeating: "B", count: 43)
        for _ in 0..<3 {
            await #expect(throws: AuthenticationError(.tokenInvalid)) { try await directory.authenticateTenant(token: wrong, clientAddress: "6.6.6.6") }
        }
        // The attacker's address is locked, even with a valid token for another tenant.
        await #expect(throws: AuthenticationError.self) { try await directory.authenticateTenant(token: beta.text, clientAddress: "6.6.6.6") }
        // The tenant is locked from every address, the right token included; other tenants are not.
        do {
            _ = try await directory.authenticateTenant(token: token.text, clientAddress: "7.7.7.7")
            Issue.record("locked tenant authenticated")
        } catch {
            guard case .lockedOut = error.code else { Issue.record("expected lockout, got \(error)"); return }
        }
        #expect(try await directory.authenticateTenant(token: beta.text, clientAddress: "7.7.7.7").rawValue == "beta")
        clock.advance(121)
        #expect(try await directory.authenticateTenant(token: token.text, clientAddress: "6.6.6.6") == acme)
        try await store.close()
    }

    @Test("a good admin token between wrong one-time codes does not clear their failures", arguments: Backend.available)
    func aGoodTokenDoesNotResetOneTimeCodeFailures(_ backend: Backend) async throws {
        let store = try await backend.makeStore()
        let clock = ManualClock()
        let directory = makeDirectory(store: store, clock: clock, lockout: LockoutPolicy(maximumFailures: 3, window: .seconds(60), lockoutDuration: .seconds(120)))
        let acme = try TenantName("acme")
        let issued = try await directory.createTenant(acme, mfa: true, actor: "test")
        let enrolment = try #require(issued.otp)
        let secret = try #require(Base32.decode(enrolment.secretBase32))
        // Someone holding the token guesses codes; each request presents the good token first, as the API checks it.
        for guess in ["000000", "111111", "222222"] {
            #expect(try await directory.authenticateTenant(token: issued.adminToken.text, clientAddress: "6.6.6.6") == acme)
            await #expect(throws: AuthenticationError(.otpInvalid)) { try await directory.verifyOTP(for: acme, code: guess, clientAddress: "6.6.6.6") }
        }
        // Three failures lock the codes of the tenant, the right code included, while the token still works.
        let code = TOTP(secret: secret).code(forStep: TOTP.step(at: clock.now))
        do {
            try await directory.verifyOTP(for: acme, code: code, clientAddress: "7.7.7.7")
            Issue.record("the codes should be locked")
        } catch {
            guard case .lockedOut = error.code else { throw error }
        }
        #expect(try await directory.authenticateTenant(token: issued.adminToken.text, clientAddress: "7.7.7.7") == acme)
        try await store.close()
    }

    @Test(arguments: Backend.available)
    func otpIsRequiredSingleUseAndResettable(_ backend: Backend) async throws {
        let store = try await backend.makeStore()
        let clock = ManualClock()
        let directory = makeDirectory(store: store, clock: clock)
        let acme = try TenantName("acme")
        let issued = try await directory.createTenant(acme, mfa: true, actor: "test")
        let enrolment = try #require(issued.otp)
        let secret = try #require(Base32.decode(enrolment.secretBase32))
        let code = TOTP(secret: secret).code(forStep: TOTP.step(at: clock.now))
        await #expect(throws: AuthenticationError(.otpRequired)) { try await directory.verifyOTP(for: acme, code: nil, clientAddress: "a") }
        await #expect(throws: AuthenticationError(.otpInvalid)) { try await directory.verifyOTP(for: acme, code: "12345x", clientAddress: "a") }
        try await directory.verifyOTP(for: acme, code: code, clientAddress: "a")
        await #expect(throws: AuthenticationError(.otpInvalid)) { try await directory.verifyOTP(for: acme, code: code, clientAddress: "a") }
        clock.advance(30)
        try await directory.verifyOTP(for: acme, code: TOTP(secret: secret).code(forStep: TOTP.step(at: clock.now)), clientAddress: "a")

        let reset = try await directory.resetOTP(for: acme, actor: "test")
        let newSecret = try #require(Base32.decode(reset.secretBase32))
        clock.advance(30)
        await #expect(throws: AuthenticationError(.otpInvalid)) {
            try await directory.verifyOTP(for: acme, code: TOTP(secret: secret).code(forStep: TOTP.step(at: clock.now)), clientAddress: "a")
        }
        try await directory.verifyOTP(for: acme, code: TOTP(secret: newSecret).code(forStep: TOTP.step(at: clock.now)), clientAddress: "a")

        let beta = try TenantName("beta")
        _ = try await directory.createTenant(beta, mfa: false, actor: "test")
        try await directory.verifyOTP(for: beta, code: nil, clientAddress: "a")
        try await store.close()
    }

    @Test(.enabled(if: ExternalTools.pythonEnabled), arguments: Backend.available)
    func pyotpCodesAreAcceptedOnceThenRefused(_ backend: Backend) async throws {
        let store = try await backend.makeStore()
        let directory = makeDirectory(store: store)
        let acme = try TenantName("acme")
        let enrolment = try #require(try await directory.createTenant(acme, mfa: true, actor: "test").otp)
        // Both codes for one instant in one process: two processes could straddle a 30 s step on a loaded machine.
        let codes = try runPython(
            "import sys, time, pyotp; t = time.time(); print(pyotp.parse_uri(sys.argv[1]).at(t), pyotp.TOTP(sys.argv[2]).at(t))",
            arguments: [enrolment.provisioningURI, enrolment.secretBase32])
        #expect(codes.status == 0, "\(codes.stderr)")
        let pair = codes.stdout.split(separator: " ").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        let code = try #require(pair.first)
        #expect(pair.count == 2 && pair[1] == code, "the URI and the base32 secret give the same code: \(pair)")
        try await directory.verifyOTP(for: acme, code: code, clientAddress: "127.0.0.1")
        await #expect(throws: AuthenticationError(.otpInvalid)) { try await directory.verifyOTP(for: acme, code: code, clientAddress: "127.0.0.1") }
        try await store.close()
    }

    @Test(arguments: Backend.available)
    func operatorTokenIsSeparateFromTenantTokens(_ backend: Backend) async throws {
        let store = try await backend.makeStore()
        let directory = makeDirectory(store: store)
        #expect(try await !directory.hasOperatorToken())
        let first = try await directory.issueOperatorToken(actor: "test")
        try await directory.authenticateOperator(token: first.text, clientAddress: "a")
        let tenantToken = try await directory.createTenant(try TenantName("acme"), mfa: false, actor: "test").adminToken
        await #expect(throws: AuthenticationError(.tokenInvalid)) { try await directory.authenticateOperator(token: tenantToken.text, clientAddress: "a") }
        await #expect(throws: AuthenticationError(.tokenInvalid)) { try await directory.authenticateTenant(token: first.text, clientAddress: "a") }
        let second = try await directory.issueOperatorToken(actor: "test")
        await #expect(throws: AuthenticationError(.tokenInvalid)) { try await directory.authenticateOperator(token: first.text, clientAddress: "a") }
        try await directory.authenticateOperator(token: second.text, clientAddress: "a")
        try await store.close()
    }
}
