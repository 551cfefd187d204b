import Foundation
import TestSupport
import Testing

@testable import Tenancy

@Suite struct Base32Tests {
    // RFC 4648 §10 vectors, without padding.
    @Test(arguments: [("", ""), ("f", "MY"), ("fo", "MZXQ"), ("foo", "MZXW6"), ("foob", "MZXW6YQ"), ("fooba", "MZXW6YTB"), ("foobar", "MZXW6YTBOI")])
    func rfc4648(_ plain: String, _ encoded: String) {
        #expect(Base32.encode(Array(plain.utf8)) == encoded)
        #expect(Base32.decode(encoded) == Array(plain.utf8))
        #expect(Base32.decode(encoded.lowercased() + "==") == Array(plain.utf8))
    }

    @Test func rejectsForeignCharacters() {
        #expect(Base32.decode("MZXW1") == nil)
        #expect(Base32.decode("MZ!W") == nil)
    }
}

@Suite struct TOTPTests {
    static let rfcSecret = Array("12345678901234567890".utf8)

    // RFC 6238 appendix B, SHA-1, last six digits of the eight-digit values.
    @Test(arguments: [(59, "287082"), (1_111_111_109, "081804"), (1_111_111_111, "050471"), (1_234_567_890, "005924"),
        (2_000_000_000, "279037"), (20_000_000_000, "353130")])
    func rfc6238Vectors(_ time: Int64, _ code: String) {
        let totp = TOTP(secret: Self.rfcSecret)
        #expect(totp.code(forStep: TOTP.step(at: Date(timeIntervalSince1970: TimeInterval(time)))) == code)
    }

    @Test func acceptsOneStepOfSkewEitherSide() {
        let totp = TOTP(secret: Self.rfcSecret)
        let now = Date(timeIntervalSince1970: 1_234_567_890)
        let step = TOTP.step(at: now)
        #expect(totp.matchingStep(for: totp.code(forStep: step), at: now) == step)
        #expect(totp.matchingStep(for: totp.code(forStep: step - 1), at: now) == step - 1)
        #expect(totp.matchingStep(for: totp.code(forStep: step + 1), at: now) == step + 1)
        #expect(totp.matchingStep(for: totp.code(forStep: step - 2), at: now) == nil)
        #expect(totp.matchingStep(for: totp.code(forStep: step + 2), at: now) == nil)
    }

    @Test(arguments: ["", "12345", "1234567", "abcdef", "12 456", "١٢٣٤٥٦"])
    func rejectsMalformedCodes(_ code: String) {
        #expect(TOTP(secret: Self.rfcSecret).matchingStep(for: code, at: Date()) == nil)
    }

    @Test func newSecretsAre160BitsAnd32Base32Characters() {
        let secret = TOTP.generateSecret()
        #expect(secret.count == 20)
        #expect(Base32.encode(secret).count == 32)
    }

    @Test func provisioningURIHasTheAuthenticatorParameters() {
        let uri = TOTP(secret: Self.rfcSecret).provisioningURI(account: "acme", issuer: "wahost")
        #expect(uri == "otpauth://totp/wahost:acme?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=wahost&algorithm=SHA1&digits=6&period=30")
    }
}

@Suite struct Argon2idTests {
    let hasher = Argon2id()

    @Test func hashesToPHCStringsWithTheDocumentedParameters() throws {
        let hash = try hasher.hash("correct horse")
        #expect(hash.hasPrefix("$argon2id$v=19$m=65536,t=3,p=4$"))
        #expect(hasher.verify("correct horse", against: hash))
        #expect(!hasher.verify("correct horsf", against: hash))
        #expect(try hasher.hash("correct horse") != hash, "salts must differ")
    }

    @Test(arguments: ["", "$argon2i$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaA", "$argon2id$garbage", "$argon2id$v=19$m=1,t=1,p=1$$"])
    func rejectsGarbageHashes(_ hash: String) {
        #expect(!hasher.verify("anything", against: hash))
    }

    @Test(.enabled(if: ExternalToolsGate.python)) func hashVerifiesWithArgon2CFFI() throws {
        let hash = try hasher.hash("wah_acme_secret")
        let result = try runPython(
            "import sys, argon2; print(argon2.PasswordHasher().verify(sys.argv[1], sys.argv[2]))", arguments: [hash, "wah_acme_secret"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "True")
        let wrong = try runPython(
            "import sys, argon2\ntry:\n argon2.PasswordHasher().verify(sys.argv[1], sys.argv[2]); print('accepted')\nexcept argon2.exceptions.VerifyMismatchError: print('mismatch')",
            arguments: [hash, "wah_acme_wrong"])
        #expect(wrong.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "mismatch")
    }

    @Test(.enabled(if: ExternalToolsGate.python)) func argon2CFFIHashVerifiesInWahost() throws {
        let result = try runPython("import sys, argon2; print(argon2.PasswordHasher().hash(sys.argv[1]))", arguments: ["made-by-python"])
        #expect(result.status == 0, "\(result.stderr)")
        let hash = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(hash.hasPrefix("$argon2id$"))
        #expect(hasher.verify("made-by-python", against: hash))
        #expect(!hasher.verify("made-by-pythoN", against: hash))
    }
}

@Suite struct LockoutTests {
    @Test func locksAfterTheLimitAndExpires() async {
        let policy = LockoutPolicy(maximumFailures: 3, window: .seconds(60), lockoutDuration: .seconds(300))
        let tracker = LockoutTracker(policy: policy)
        let start = Date(timeIntervalSince1970: 1_000_000)
        #expect(await tracker.recordFailure("k", now: start) == nil)
        #expect(await tracker.recordFailure("k", now: start.addingTimeInterval(1)) == nil)
        let until = await tracker.recordFailure("k", now: start.addingTimeInterval(2))
        #expect(until == start.addingTimeInterval(302))
        #expect(await tracker.lockedUntil("k", now: start.addingTimeInterval(100)) != nil)
        #expect(await tracker.lockedUntil("other", now: start.addingTimeInterval(100)) == nil)
        #expect(await tracker.lockedUntil("k", now: start.addingTimeInterval(303)) == nil)
    }

    @Test func failuresOutsideTheWindowDoNotCount() async {
        let tracker = LockoutTracker(policy: LockoutPolicy(maximumFailures: 2, window: .seconds(10), lockoutDuration: .seconds(60)))
        let start = Date(timeIntervalSince1970: 5_000)
        await tracker.recordFailure("k", now: start)
        #expect(await tracker.recordFailure("k", now: start.addingTimeInterval(11)) == nil)
        #expect(await tracker.lockedUntil("k", now: start.addingTimeInterval(12)) == nil)
    }

    @Test func memoryStaysBounded() async {
        let tracker = LockoutTracker(policy: .standard, capacity: 100)
        let now = Date()
        for index in 0..<1_000 { await tracker.recordFailure("address:\(index)", now: now) }
        #expect(await tracker.lockedUntil("address:999", now: now) == nil)
    }
}

@Suite struct VerifiedTokenCacheTests {
    @Test func hitsOnlyForTheSameStoredHashWithinTheLifetime() async {
        let cache = VerifiedTokenCache(lifetime: .seconds(60))
        let now = Date()
        await cache.insert(token: "t", storedHash: "h1", now: now)
        #expect(await cache.contains(token: "t", storedHash: "h1", now: now.addingTimeInterval(30)))
        #expect(!(await cache.contains(token: "t", storedHash: "h2", now: now)))
        #expect(!(await cache.contains(token: "u", storedHash: "h1", now: now)))
        #expect(!(await cache.contains(token: "t", storedHash: "h1", now: now.addingTimeInterval(61))))
        await cache.invalidate(storedHash: "h1")
        #expect(!(await cache.contains(token: "t", storedHash: "h1", now: now)))
    }
}

@Suite struct MasterKeyTests {
    @Test func derivesDistinctKeysPerTenantAndPurpose() throws {
        let key = try MasterKey(bytes: Array(repeating: 7, count: 32))
        let a = try TenantName("a")
        let b = try TenantName("b")
        #expect(key.derivedKey(for: a, purpose: .credentials) != key.derivedKey(for: b, purpose: .credentials))
        #expect(key.derivedKey(for: a, purpose: .credentials) != key.derivedKey(for: a, purpose: .otpSecret))
        #expect(key.derivedKey(for: a, purpose: .credentials) == key.derivedKey(for: a, purpose: .credentials))
    }

    @Test func rejectsWrongLengthsAndBadBase64() {
        #expect(throws: MasterKeyError.self) { try MasterKey(bytes: Array(repeating: 0, count: 31)) }
        #expect(throws: MasterKeyError.self) { try MasterKey(base64: "not base64!") }
        #expect(throws: MasterKeyError.self) { try MasterKey(base64: "AAAA") }
    }
}
