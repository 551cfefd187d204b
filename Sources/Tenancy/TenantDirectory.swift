import Crypto
import Foundation
import Synchronization
import Logging
import WahostBasics

/// What a new tenant's owner is shown once: the admin token and, with MFA, the OTP enrolment.
public struct IssuedTenant: Sendable {
    /// The tenant that was created.
    public let tenant: Tenant
    /// The admin token; stored only as an argon2id hash.
    public let adminToken: AdminToken
    /// The TOTP enrolment, or nil for a tenant without MFA.
    public let otp: OTPEnrolment?
}

/// A TOTP enrolment as shown once to the tenant's owner.
public struct OTPEnrolment: Sendable {
    /// The secret in base32 (32 characters).
    public let secretBase32: String
    /// The `otpauth://totp/…` URI for authenticator apps.
    public let provisioningURI: String
}

/// Tenants and their secrets: creation, tokens (argon2id, cached verification), TOTP (single-use codes), lockout.
public final class TenantDirectory: Sendable {
    /// Tunables of the directory.
    public struct Configuration: Sendable {
        /// argon2id cost for new token hashes.
        public var hashParameters: Argon2id.Parameters
        /// Failure lockout per tenant and per client address.
        public var lockoutPolicy: LockoutPolicy
        /// How long a verified token skips argon2.
        public var verifiedTokenLifetime: Duration
        /// The issuer shown in authenticator apps.
        public var otpIssuer: String
        /// argon2 runs at once (64 MiB each); verifications beyond this wait in a queue.
        public var argon2Concurrency: Int
        /// Verifications allowed to wait for argon2; more are refused as busy (503) instead of piling up.
        public var argon2QueueLimit: Int
        /// How long ``TenantDirectory/exists(_:)`` trusts that a tenant it saw still exists; a deletion made by
        /// this process shows at once, one made by another node sharing the database within this time.
        public var knownTenantLifetime: Duration
        /// Lifetime, wrong tries and request limits of WhatsApp one-time codes.
        public var whatsAppCodes: WhatsAppCodePolicy = .standard

        public init(
            hashParameters: Argon2id.Parameters = .rfc9106LowMemory, lockoutPolicy: LockoutPolicy = .standard,
            verifiedTokenLifetime: Duration = .seconds(300), otpIssuer: String = "wahost", knownTenantLifetime: Duration = .seconds(5),
            argon2Concurrency: Int = Configuration.defaultArgon2Concurrency, argon2QueueLimit: Int = 32
        ) {
            self.argon2Concurrency = argon2Concurrency
            self.argon2QueueLimit = argon2QueueLimit
            self.hashParameters = hashParameters
            self.lockoutPolicy = lockoutPolicy
            self.verifiedTokenLifetime = verifiedTokenLifetime
            self.otpIssuer = otpIssuer
            self.knownTenantLifetime = knownTenantLifetime
        }

        /// One argon2 run per core, at most 4 (256 MiB).
        public static var defaultArgon2Concurrency: Int { min(4, max(1, ProcessInfo.processInfo.activeProcessorCount)) }
    }

    let repositories: any SystemRepositories
    /// Bounds argon2 runs in flight (verifications and new hashes).
    public let argon2Gate: Argon2Gate
    let masterKey: MasterKey
    let hasher: Argon2id
    let configuration: Configuration
    let cache: VerifiedTokenCache
    let lockout: LockoutTracker
    /// Folds floods of anonymous failures into a few audit rows.
    let failureAudit = FailureAuditAggregator()
    /// Tenants seen in storage and when, so `status` does not read the database on every request.
    private let knownTenants = Mutex<[TenantName: Date]>([:])
    /// True while files of an earlier tenant of this name remain (`auth/<name>/`); creation is refused until they are wiped.
    private let credentialsRemain: @Sendable (TenantName) -> Bool
    let now: @Sendable () -> Date
    let logger: Logger

    public init(
        repositories: any SystemRepositories, masterKey: MasterKey, configuration: Configuration = .init(),
        logger: Logger = Logger(label: "wahost.tenancy"), now: @escaping @Sendable () -> Date = { Date() },
        credentialsRemain: @escaping @Sendable (TenantName) -> Bool = { _ in false }
    ) {
        self.credentialsRemain = credentialsRemain
        self.repositories = repositories
        self.masterKey = masterKey
        self.configuration = configuration
        self.hasher = Argon2id(parameters: configuration.hashParameters)
        self.argon2Gate = Argon2Gate(maximumRunning: configuration.argon2Concurrency, maximumWaiting: configuration.argon2QueueLimit)
        self.cache = VerifiedTokenCache(lifetime: configuration.verifiedTokenLifetime)
        self.lockout = LockoutTracker(policy: configuration.lockoutPolicy)
        self.logger = logger
        self.now = now
    }

    // MARK: Tenants

    /// Creates a tenant with a fresh admin token and, unless `mfa` is false, a TOTP secret; `mfaNumber` is where
    /// WhatsApp one-time codes go.
    public func createTenant(
        _ name: TenantName, mfa: Bool, mfaNumber: String? = nil, actor: String, clientAddress: String? = nil
    ) async throws(TenancyError) -> IssuedTenant {
        let digits = try Self.mfaDigits(mfaNumber)
        guard !credentialsRemain(name) else {
            throw TenancyError(
                .credentialsRemain, "auth/\(name)/ still holds files of an earlier tenant '\(name)'; run `wahost tenant delete \(name)` to wipe them")
        }
        let tenant = Tenant(name: name, createdAt: now(), mfaEnabled: mfa, instanceID: Tenant.newInstanceID(), mfaNumber: digits)
        let token = AdminToken.generate(for: name)
        let tokenHash = try await hashToken(token)
        let secret = mfa ? TOTP.generateSecret() : nil
        do {
            try await repositories.createTenant(tenant, adminTokenHash: tokenHash, otpSecret: secret.map { seal(otpSecret: $0, for: name) })
        } catch {
            throw error.kind == .conflict ? TenancyError(.tenantExists, "tenant '\(name)' already exists") : TenancyError(error)
        }
        await audit(actor: actor, action: "tenant.create", tenant: name, clientAddress: clientAddress, detail: mfa ? "mfa" : "no-mfa")
        logger.info("tenant created", metadata: ["tenant": "\(name)", "mfa": "\(mfa)"])
        return IssuedTenant(tenant: tenant, adminToken: token, otp: secret.map { enrolment(for: name, secret: $0) })
    }

    /// Every tenant, ordered by name.
    public func listTenants() async throws(TenancyError) -> [Tenant] {
        do { return try await repositories.listTenants() } catch { throw TenancyError(error) }
    }

    /// The only tenant, or nil when there are none or several; reads at most two rows.
    public func onlyTenant() async throws(TenancyError) -> TenantName? {
        let first: [Tenant]
        do { first = try await repositories.listTenants(limit: 2) } catch { throw TenancyError(error) }
        return first.count == 1 ? first[0].name : nil
    }

    /// The tenant named `name`, if it exists.
    public func tenant(named name: TenantName) async throws(TenancyError) -> Tenant? {
        do { return try await repositories.tenant(named: name) } catch { throw TenancyError(error) }
    }

    /// True if the tenant exists; a recent answer is reused for ``Configuration/knownTenantLifetime`` (no database read).
    public func exists(_ name: TenantName) async throws(TenancyError) -> Bool {
        let moment = now()
        let lifetime = configuration.knownTenantLifetime.timeInterval
        let known = knownTenants.withLock { seen in
            seen[name].map { $0 <= moment && moment.timeIntervalSince($0) < lifetime } ?? false
        }
        if known { return true }
        let found = try await tenant(named: name) != nil
        knownTenants.withLock { seen in
            if found { seen[name] = moment } else { seen[name] = nil }
        }
        return found
    }

    /// Deletes a tenant and its rows; throws `.tenantNotFound` if there is none. Credential files are the caller's, wiped before.
    public func deleteTenant(_ name: TenantName, actor: String, clientAddress: String? = nil) async throws(TenancyError) {
        let storedHash: String?
        do {
            storedHash = try await repositories.adminTokenHash(for: name)
            guard try await repositories.deleteTenant(named: name) else { throw TenancyError(.tenantNotFound, "no tenant named '\(name)'") }
        } catch let error as TenancyError {
            throw error
        } catch let error as RepositoryError {
            throw TenancyError(error)
        } catch {
            throw TenancyError(.storage, "\(error)")
        }
        knownTenants.withLock { $0[name] = nil }
        if let storedHash { await cache.invalidate(storedHash: storedHash) }
        await audit(actor: actor, action: "tenant.delete", tenant: name, clientAddress: clientAddress, detail: nil)
        logger.info("tenant deleted", metadata: ["tenant": "\(name)"])
    }

    /// Replaces a tenant's admin token; the old one stops working at once.
    public func rotateAdminToken(for name: TenantName, actor: String, clientAddress: String? = nil) async throws(TenancyError) -> AdminToken {
        let token = AdminToken.generate(for: name)
        let hash = try await hashToken(token)
        let previous: String?
        do throws(RepositoryError) {
            previous = try await repositories.adminTokenHash(for: name)
            guard previous != nil else { throw RepositoryError(.notFound, "no tenant named '\(name)'") }
            try await repositories.replaceAdminTokenHash(for: name, with: hash)
        } catch {
            throw error.kind == .notFound ? TenancyError(.tenantNotFound, "no tenant named '\(name)'") : TenancyError(error)
        }
        if let previous { await cache.invalidate(storedHash: previous) }
        await audit(actor: actor, action: "token.rotate", tenant: name, clientAddress: clientAddress, detail: nil)
        return token
    }

    /// Issues a new TOTP secret for a tenant (enabling MFA if it was off); old codes stop working.
    public func resetOTP(for name: TenantName, actor: String, clientAddress: String? = nil) async throws(TenancyError) -> OTPEnrolment {
        let secret = TOTP.generateSecret()
        do throws(RepositoryError) {
            guard try await repositories.tenant(named: name) != nil else { throw RepositoryError(.notFound, "") }
            try await repositories.replaceOTPSecret(for: name, with: seal(otpSecret: secret, for: name))
        } catch {
            throw error.kind == .notFound ? TenancyError(.tenantNotFound, "no tenant named '\(name)'") : TenancyError(error)
        }
        await audit(actor: actor, action: "otp.reset", tenant: name, clientAddress: clientAddress, detail: nil)
        return enrolment(for: name, secret: secret)
    }

    // MARK: Operator

    /// True if an operator token was issued.
    public func hasOperatorToken() async throws(TenancyError) -> Bool {
        do { return try await repositories.operatorTokenHash() != nil } catch { throw TenancyError(error) }
    }

    /// Issues (or replaces) the operator token.
    public func issueOperatorToken(actor: String) async throws(TenancyError) -> AdminToken {
        let token = AdminToken.generateOperator()
        let hash = try await hashToken(token)
        do {
            let previous = try await repositories.operatorTokenHash()
            try await repositories.replaceOperatorTokenHash(with: hash)
            if let previous { await cache.invalidate(storedHash: previous) }
        } catch {
            throw TenancyError(error)
        }
        await audit(actor: actor, action: "operator_token.issue", tenant: nil, clientAddress: nil, detail: nil)
        return token
    }

    private func hashToken(_ token: AdminToken) async throws(TenancyError) -> String {
        let hasher = self.hasher
        let text = token.text
        let result = await argon2Gate.run(refusable: false) { Result { () throws(Argon2Error) in try hasher.hash(text) } }
        switch result {
        case .some(.success(let hash)): return hash
        case .some(.failure(let error)): throw TenancyError(.hashing, error.description)
        case .none: throw TenancyError(.hashing, "argon2 is busy")
        }
    }

    private func seal(otpSecret: [UInt8], for tenant: TenantName) -> [UInt8] {
        let key = masterKey.derivedKey(for: tenant, purpose: .otpSecret)
        // AES-GCM sealing with a fresh random nonce cannot fail for a 32-byte key.
        let box = try! AES.GCM.seal(otpSecret, using: key, authenticating: Array("otp-secret:\(tenant)".utf8))
        return Array(box.combined!)
    }

    func open(sealedOTPSecret: [UInt8], for tenant: TenantName) -> [UInt8]? {
        let key = masterKey.derivedKey(for: tenant, purpose: .otpSecret)
        guard let box = try? AES.GCM.SealedBox(combined: sealedOTPSecret),
            let plain = try? AES.GCM.open(box, using: key, authenticating: Array("otp-secret:\(tenant)".utf8))
        else { return nil }
        return Array(plain)
    }

    private func enrolment(for tenant: TenantName, secret: [UInt8]) -> OTPEnrolment {
        let totp = TOTP(secret: secret)
        return OTPEnrolment(
            secretBase32: Base32.encode(secret), provisioningURI: totp.provisioningURI(account: tenant.rawValue, issuer: configuration.otpIssuer))
    }

    func audit(actor: String, action: String, tenant: TenantName?, clientAddress: String?, detail: String?) async {
        let event = AuditEvent(at: now(), actor: actor, action: action, tenant: tenant?.rawValue, clientAddress: clientAddress, detail: detail)
        do { try await repositories.appendAudit(event) } catch {
            logger.error("audit log write failed", metadata: ["action": "\(action)", "error": "\(error)"])
        }
    }

}

/// A tenant operation failed.
public struct TenancyError: Error, CustomStringConvertible {
    /// What kind of failure.
    public enum Kind: Sendable, Equatable {
        /// A tenant with that name exists.
        case tenantExists
        /// No tenant with that name.
        case tenantNotFound
        /// The database failed.
        case storage
        /// argon2 failed.
        case hashing
        /// Credential files of an earlier tenant of this name remain; they must be wiped first.
        case credentialsRemain
        /// A phone number that is not 7 to 15 digits, country code first.
        case invalidNumber
        /// The tenant has no MFA, so it has no use for a one-time code.
        case mfaNotEnabled
        /// Asked too often; the next request is allowed after this many seconds.
        case rateLimited(retryAfter: Int)
    }

    /// What kind of failure.
    public let kind: Kind
    /// A message without secrets.
    public let description: String

    public init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }

    init(_ error: RepositoryError) {
        self.init(.storage, error.message)
    }
}
