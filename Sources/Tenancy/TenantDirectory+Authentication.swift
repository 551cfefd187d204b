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
        try await check(token, keys: keys, failure: "auth.token_invalid", tenant: tenant, clientAddress: clientAddress) {
            try await self.repositories.adminTokenHash(for: tenant)
        }
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
        try await check(token, keys: [addressKey, Self.operatorKey], failure: "auth.operator_token_invalid", tenant: nil, clientAddress: clientAddress) {
            try await self.repositories.operatorTokenHash()
        }
    }

    /// Checks a TOTP code, or the code sent on WhatsApp, for an MFA tenant and uses it up; a tenant without MFA passes without one.
    /// Its failures count under keys of their own: a good admin token clears the token's failures, and must not clear
    /// the one-time codes' (someone holding a stolen token could otherwise guess codes without end).
    public func verifyOTP(for tenant: TenantName, code: String?, clientAddress: String) async throws(AuthenticationError) {
        let keys = ["otp:" + Self.addressKey(clientAddress), "otp:" + Self.tenantKey(tenant)]
        guard let code, !code.isEmpty else {
            for key in keys { try await refuseIfLocked(key) }
            let stored: StoredOTPSecret?
            do { stored = try await repositories.otpSecret(for: tenant) } catch { throw AuthenticationError(.unavailable) }
            if stored == nil { return }
            throw AuthenticationError(.otpRequired)
        }
        var failure = "auth.otp_invalid"
        var errorAfterComparing: AuthenticationError?
        let result = try await attempt(keys) { () async throws(AuthenticationError) -> Bool in
            let stored: StoredOTPSecret?
            do { stored = try await repositories.otpSecret(for: tenant) } catch { throw AuthenticationError(.unavailable) }
            guard let stored else { return true }
            guard let secret = open(sealedOTPSecret: stored.sealedSecret, for: tenant) else {
                logger.error("stored OTP secret does not open with the master key", metadata: ["tenant": "\(tenant)"])
                throw AuthenticationError(.unavailable)
            }
            // Not the authenticator's code: perhaps the one sent on WhatsApp. The code was compared already, so an error
            // from here on is a failure too (an outage must not make guesses free), answered as the error.
            guard let step = TOTP(secret: secret).matchingStep(for: code, at: now()) else {
                do throws(AuthenticationError) { return try await useWhatsAppCode(code, for: tenant, clientAddress: clientAddress) == .used } catch {
                    errorAfterComparing = error
                    return false
                }
            }
            let fresh: Bool
            do { fresh = try await repositories.consumeOTPStep(for: tenant, step: step) } catch { throw AuthenticationError(.unavailable) }
            if !fresh { failure = "auth.otp_replayed" }
            return fresh
        }
        guard result.succeeded else {
            if let errorAfterComparing { throw errorAfterComparing }
            await auditFailure(failure, tenant: tenant, clientAddress: clientAddress, locking: result.locking)
            throw AuthenticationError(.otpInvalid)
        }
    }

    // MARK: Internals

    /// Checks `token` against the stored hash `read` returns, as one attempt against `keys`. A token verified within
    /// the cache's lifetime passes without argon2 and without an attempt: concurrent requests with a good token are
    /// never counted as failures, so they cannot lock their own client out.
    private func check(
        _ token: String, keys: [String], failure action: String, tenant: TenantName?, clientAddress: String,
        storedHash read: () async throws -> String?
    ) async throws(AuthenticationError) {
        if let until = await lockout.lockedUntil(anyOf: keys, now: now()) { throw AuthenticationError(.lockedOut(until: until)) }
        let storedHash: String?
        do { storedHash = try await read() } catch { throw AuthenticationError(.unavailable) }
        if let storedHash, await cache.contains(token: token, storedHash: storedHash, now: now()) {
            await lockout.recordSuccess(keys)
            return
        }
        let result = try await attempt(keys) { () async throws(AuthenticationError) -> Bool in
            guard let storedHash else { return false }
            return try await verify(token: token, storedHash: storedHash)
        }
        guard result.succeeded else {
            await auditFailure(action, tenant: tenant, clientAddress: clientAddress, locking: result.locking)
            throw AuthenticationError(.tokenInvalid)
        }
    }

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

    /// Runs `check` as one attempt against `keys`, refused while one is locked (see `LockoutTracker.beginAttempt`):
    /// `true` is a success, `false` a failure, an error neither (an outage must not lock anyone out). Returns whether
    /// it succeeded and whether its failure locked a key.
    private func attempt(
        _ keys: [String], _ check: () async throws(AuthenticationError) -> Bool
    ) async throws(AuthenticationError) -> (succeeded: Bool, locking: Bool) {
        if case .refused(let until) = await lockout.beginAttempt(keys, now: now) { throw AuthenticationError(.lockedOut(until: until)) }
        let succeeded: Bool
        do { succeeded = try await check() } catch {
            await lockout.endAttempt(keys, .withdrawn, now: now())
            throw error
        }
        let locked = await lockout.endAttempt(keys, succeeded ? .succeeded : .failed, now: now())
        return (succeeded, locked != nil)
    }

    private func refuseIfLocked(_ key: String) async throws(AuthenticationError) {
        if let until = await lockout.lockedUntil(key, now: now()) { throw AuthenticationError(.lockedOut(until: until)) }
    }

    /// A malformed token: refused without a database read or argon2, counted against the client only.
    private func failCheaply(_ addressKey: String, action: String, clientAddress: String) async throws(AuthenticationError) -> Never {
        let result = try await attempt([addressKey]) { () async throws(AuthenticationError) -> Bool in false }
        await auditFailure(action, tenant: nil, clientAddress: clientAddress, locking: result.locking)
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
