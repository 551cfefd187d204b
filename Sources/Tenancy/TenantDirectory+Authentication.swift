import Foundation
import Logging

extension TenantDirectory {
    /// Verifies a tenant's admin token; returns the tenant it names.
    public func authenticateTenant(token: String?, clientAddress: String) async throws(AuthenticationError) -> TenantName {
        let addressKey = Self.addressKey(clientAddress)
        guard let token, !token.isEmpty else {
            try await refuseIfLocked(addressKey)
            throw AuthenticationError(.tokenMissing)
        }
        guard let parsed = AdminToken.parse(token), let tenant = parsed.tenant else {
            try await failCheaply(addressKey, action: "auth.token_invalid", clientAddress: clientAddress)
        }
        let keys = [addressKey, Self.tenantKey(tenant)]
        let attempt = try await begin(keys)
        let locking = attempt.locking
        let storedHash: String?
        do { storedHash = try await repositories.adminTokenHash(for: tenant) } catch { throw await unavailable(attempt) }
        guard let storedHash, try await verify(token: token, storedHash: storedHash) else {
            await auditFailure("auth.token_invalid", tenant: tenant, clientAddress: clientAddress, locking: locking)
            throw AuthenticationError(.tokenInvalid)
        }
        for key in keys { await lockout.recordSuccess(key) }
        return tenant
    }

    /// Verifies the operator token; only a well-formed operator token counts against the operator's lockout.
    public func authenticateOperator(token: String?, clientAddress: String) async throws(AuthenticationError) {
        let addressKey = Self.addressKey(clientAddress)
        guard let token, !token.isEmpty else {
            try await refuseIfLocked(addressKey)
            throw AuthenticationError(.tokenMissing)
        }
        // Junk (a tenant token, a typo, a scanner's guess) is refused without a database read and counts against the
        // client's address only: otherwise anyone could lock the operator out with ten malformed headers.
        guard let parsed = AdminToken.parse(token), parsed.tenant == nil else {
            try await failCheaply(addressKey, action: "auth.operator_token_invalid", clientAddress: clientAddress)
        }
        let keys = [addressKey, Self.operatorKey]
        let attempt = try await begin(keys)
        let locking = attempt.locking
        let storedHash: String?
        do { storedHash = try await repositories.operatorTokenHash() } catch { throw await unavailable(attempt) }
        guard let storedHash, try await verify(token: token, storedHash: storedHash) else {
            await auditFailure("auth.operator_token_invalid", tenant: nil, clientAddress: clientAddress, locking: locking)
            throw AuthenticationError(.tokenInvalid)
        }
        for key in keys { await lockout.recordSuccess(key) }
    }

    /// Checks a TOTP code, or the code sent on WhatsApp, for an MFA tenant and uses it up; a tenant without MFA passes without one.
    public func verifyOTP(for tenant: TenantName, code: String?, clientAddress: String) async throws(AuthenticationError) {
        let keys = [Self.addressKey(clientAddress), Self.tenantKey(tenant)]
        guard let code, !code.isEmpty else {
            for key in keys { try await refuseIfLocked(key) }
            let stored: StoredOTPSecret?
            do { stored = try await repositories.otpSecret(for: tenant) } catch { throw AuthenticationError(.unavailable) }
            if stored == nil { return }
            throw AuthenticationError(.otpRequired)
        }
        let attempt = try await begin(keys)
        let locking = attempt.locking
        let stored: StoredOTPSecret?
        do { stored = try await repositories.otpSecret(for: tenant) } catch { throw await unavailable(attempt) }
        guard let stored else {
            for key in keys { await lockout.recordSuccess(key) }
            return
        }
        guard let secret = open(sealedOTPSecret: stored.sealedSecret, for: tenant) else {
            logger.error("stored OTP secret does not open with the master key", metadata: ["tenant": "\(tenant)"])
            throw AuthenticationError(.unavailable)
        }
        guard let step = TOTP(secret: secret).matchingStep(for: code, at: now()) else {
            // Not the authenticator's code: perhaps the one sent on WhatsApp.
            if try await useWhatsAppCode(code, for: tenant, clientAddress: clientAddress) == .used {
                for key in keys { await lockout.recordSuccess(key) }
                return
            }
            await auditFailure("auth.otp_invalid", tenant: tenant, clientAddress: clientAddress, locking: locking)
            throw AuthenticationError(.otpInvalid)
        }
        let fresh: Bool
        do { fresh = try await repositories.consumeOTPStep(for: tenant, step: step) } catch { throw await unavailable(attempt) }
        guard fresh else {
            await auditFailure("auth.otp_replayed", tenant: tenant, clientAddress: clientAddress, locking: locking)
            throw AuthenticationError(.otpInvalid)
        }
        for key in keys { await lockout.recordSuccess(key) }
    }

    // MARK: Internals

    /// True if the token matches; argon2 runs through the gate, and a full queue refuses with `.busy`.
    private func verify(token: String, storedHash: String) async throws(AuthenticationError) -> Bool {
        let moment = now()
        if await cache.contains(token: token, storedHash: storedHash, now: moment) { return true }
        let hasher = self.hasher
        guard let matches = await argon2Gate.run(refusable: true, { hasher.verify(token, against: storedHash) }) else {
            throw AuthenticationError(.busy)
        }
        if matches { await cache.insert(token: token, storedHash: storedHash, now: moment) }
        return matches
    }

    /// An attempt counted against its keys at `at`; `locking` if it reached the limit.
    private struct Attempt {
        let keys: [String]
        let at: Date
        let locking: Bool
    }

    /// Counts the attempt against every key before anything else happens; throws if one is locked.
    private func begin(_ keys: [String]) async throws(AuthenticationError) -> Attempt {
        let at = now()
        switch await lockout.beginAttempt(keys, now: at) {
        case .refused(let until): throw AuthenticationError(.lockedOut(until: until))
        case .counted(let locking): return Attempt(keys: keys, at: at, locking: locking)
        }
    }

    /// The database did not answer: the attempt is taken back (an outage must not lock anyone out), then refused.
    private func unavailable(_ attempt: Attempt) async -> AuthenticationError {
        await lockout.withdrawAttempt(attempt.keys, now: attempt.at)
        return AuthenticationError(.unavailable)
    }

    private func refuseIfLocked(_ key: String) async throws(AuthenticationError) {
        if let until = await lockout.lockedUntil(key, now: now()) { throw AuthenticationError(.lockedOut(until: until)) }
    }

    /// A malformed token: refused without a database read or argon2, counted against the client only.
    private func failCheaply(_ addressKey: String, action: String, clientAddress: String) async throws(AuthenticationError) -> Never {
        let attempt = try await begin([addressKey])
        await auditFailure(action, tenant: nil, clientAddress: clientAddress, locking: attempt.locking)
        throw AuthenticationError(.tokenInvalid)
    }

    /// Audits an anonymous failure, folding repeats of the same (action, tenant, client) within a minute into one row.
    private func auditFailure(_ action: String, tenant: TenantName?, clientAddress: String, locking: Bool) async {
        let key = action + "\u{0}" + (tenant?.rawValue ?? "") + "\u{0}" + Self.addressKey(clientAddress)
        guard case .write(let detail) = failureAudit.record(key: key, locking: locking, now: now()) else { return }
        await audit(actor: "anonymous", action: action, tenant: tenant, clientAddress: clientAddress, detail: detail)
    }

    /// IPv6 clients are counted per /64, which one subscriber usually holds whole.
    static func addressKey(_ address: String) -> String { "address:" + (IPAddress(address)?.lockoutGroup ?? address) }
    static func tenantKey(_ tenant: TenantName) -> String { "tenant:" + tenant.rawValue }
    static let operatorKey = "operator"
}

/// A credential check failed; says what to tell the caller, never why in detail.
public struct AuthenticationError: Error, Equatable, CustomStringConvertible {
    /// The outcome.
    public enum Code: Sendable, Equatable {
        /// No token presented.
        case tokenMissing
        /// Token malformed, unknown or wrong.
        case tokenInvalid
        /// The tenant has MFA and no code was given.
        case otpRequired
        /// Wrong, expired or already used code.
        case otpInvalid
        /// Too many failures; retry after the instant given.
        case lockedOut(until: Date)
        /// The database could not be read.
        case unavailable
        /// Too many token checks are waiting for argon2; retry shortly.
        case busy
    }

    /// The outcome.
    public let code: Code

    public init(_ code: Code) { self.code = code }

    public var description: String {
        switch code {
        case .tokenMissing: "admin token missing"
        case .tokenInvalid: "admin token invalid"
        case .otpRequired: "one-time code required"
        case .otpInvalid: "one-time code invalid or already used"
        case .lockedOut: "too many failed attempts; try again later"
        case .unavailable: "credential store unavailable"
        case .busy: "too many sign-ins in progress; try again shortly"
        }
    }
}
