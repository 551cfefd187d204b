import Foundation

/// Who a dashboard sign-in belongs to.
public enum DashboardPrincipal: Sendable, Hashable {
    /// A tenant's owner, signed in with the tenant's token (and OTP).
    case tenant(TenantName)
    /// The operator, signed in with the operator token.
    case `operator`
}

/// A dashboard sign-in as stored: keyed by the SHA-256 of its cookie's id, never the id itself.
public struct StoredDashboardSignIn: Sendable, Equatable {
    /// SHA-256 of the cookie's session id (32 bytes).
    public var idHash: [UInt8]
    public var principal: DashboardPrincipal
    /// The principal's credential generation at sign-in; the sign-in ends when it no longer matches.
    public var credentialGeneration: String
    public var createdAt: Date
    public var expiresAt: Date

    public init(idHash: [UInt8], principal: DashboardPrincipal, credentialGeneration: String, createdAt: Date, expiresAt: Date) {
        self.idHash = idHash
        self.principal = principal
        self.credentialGeneration = credentialGeneration
        self.createdAt = createdAt
        self.expiresAt = expiresAt
    }
}

/// A sign-in with what its principal's credentials are now, read in the same statement.
public struct DashboardSignInLookup: Sendable, Equatable {
    public var signIn: StoredDashboardSignIn
    /// The principal's current token hash (the tenant's, or the operator's); nil once it is gone.
    public var tokenHash: String?
    /// The tenant's current sealed OTP secret, if it has one (nil for the operator).
    public var sealedOTPSecret: [UInt8]?

    public init(signIn: StoredDashboardSignIn, tokenHash: String?, sealedOTPSecret: [UInt8]?) {
        self.signIn = signIn
        self.tokenHash = tokenHash
        self.sealedOTPSecret = sealedOTPSecret
    }
}

/// Signed-in dashboard browsers, shared by every node on the database; a tenant's go with the tenant.
public protocol DashboardSignInRepository: Sendable {
    /// Stores a sign-in and, in the same transaction, deletes every expired one and its principal's oldest beyond
    /// `keepingAtMost`; `.notFound` if its tenant does not exist.
    func insertDashboardSignIn(_ signIn: StoredDashboardSignIn, keepingAtMost limit: Int, now: Date) async throws(RepositoryError)
    /// The sign-in with this id hash unless it expired at `now`, with its principal's current credentials; one indexed read.
    func dashboardSignIn(idHash: [UInt8], now: Date) async throws(RepositoryError) -> DashboardSignInLookup?
    /// Deletes the sign-in with this id hash; false if there was none.
    func deleteDashboardSignIn(idHash: [UInt8]) async throws(RepositoryError) -> Bool
    /// Deletes every sign-in of `principal`; returns how many went.
    func deleteDashboardSignIns(of principal: DashboardPrincipal) async throws(RepositoryError) -> Int
    /// Deletes the sign-ins expired at `now`; returns how many went.
    func deleteExpiredDashboardSignIns(at now: Date) async throws(RepositoryError) -> Int
}
