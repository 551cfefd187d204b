import Crypto
import Foundation

/// A signed-in dashboard browser: the cookie carries `id`, the forms carry `csrfToken`.
public struct DashboardSignIn: Sendable {
    /// The cookie's value (256 random bits, base64url); the database holds only its SHA-256.
    public let id: String
    public let principal: DashboardPrincipal
    /// HMAC-SHA256 of `id` under a key derived from the master key: the same on every node, stored nowhere.
    public let csrfToken: String
    public let expiresAt: Date
}

/// Dashboard sign-ins kept in the system database: any node accepts a cookie another node issued, a restart keeps
/// them, and a sign-in ends on every node at once when it is signed out or its principal's credentials change.
public final class DashboardSignIns: Sendable {
    /// How long a sign-in lasts.
    public static let lifetime: TimeInterval = 8 * 3600
    /// At most this many sign-ins per principal: signing in again pushes out only one's own oldest.
    public static let perPrincipalLimit = 20

    private let repository: any DashboardSignInRepository
    private let csrfKey: SymmetricKey
    private let now: @Sendable () -> Date

    public init(repository: any DashboardSignInRepository, masterKey: MasterKey, now: @escaping @Sendable () -> Date = { Date() }) {
        self.repository = repository
        self.csrfKey = masterKey.derivedKey(purpose: .dashboardCSRF)
        self.now = now
    }

    /// Signs `principal` in under `generation`, its credential generation read before its credentials were checked.
    public func create(for principal: DashboardPrincipal, generation: String) async throws(TenancyError) -> DashboardSignIn {
        let id = SecureRandom.base64URL(32)
        let moment = now()
        let stored = StoredDashboardSignIn(
            idHash: Self.idHash(id), principal: principal, credentialGeneration: generation, createdAt: moment,
            expiresAt: moment.addingTimeInterval(Self.lifetime))
        do {
            try await repository.insertDashboardSignIn(stored, keepingAtMost: Self.perPrincipalLimit, now: moment)
        } catch {
            throw error.kind == .notFound ? TenancyError(.tenantNotFound, "the tenant was deleted meanwhile") : TenancyError(error)
        }
        return DashboardSignIn(id: id, principal: principal, csrfToken: csrfToken(for: id), expiresAt: stored.expiresAt)
    }

    /// The sign-in this cookie names if it exists, has not expired and its principal's credentials are unchanged
    /// since; one indexed read. A sign-in whose credentials changed is deleted.
    public func signIn(id: String?) async throws(TenancyError) -> DashboardSignIn? {
        guard let id, Self.isWellFormed(id) else { return nil }
        let hash = Self.idHash(id)
        let found: DashboardSignInLookup?
        do { found = try await repository.dashboardSignIn(idHash: hash, now: now()) } catch { throw TenancyError(error) }
        guard let found else { return nil }
        let current: String?
        switch found.signIn.principal {
        case .tenant(let name): current = TenantDirectory.tenantGeneration(name, tokenHash: found.tokenHash, sealedOTPSecret: found.sealedOTPSecret)
        case .operator: current = TenantDirectory.operatorGeneration(tokenHash: found.tokenHash)
        }
        guard let current, constantTimeEqual(Array(current.utf8), Array(found.signIn.credentialGeneration.utf8)) else {
            // Rotated, reset or re-created by the CLI or another node: the row is useless; a failed delete only waits for expiry.
            _ = try? await repository.deleteDashboardSignIn(idHash: hash)
            return nil
        }
        return DashboardSignIn(id: id, principal: found.signIn.principal, csrfToken: csrfToken(for: id), expiresAt: found.signIn.expiresAt)
    }

    /// Ends one sign-in (sign-out) on every node.
    public func end(id: String) async throws(TenancyError) {
        do { _ = try await repository.deleteDashboardSignIn(idHash: Self.idHash(id)) } catch { throw TenancyError(error) }
    }

    /// Ends every sign-in of `principal` on every node (token rotated, OTP reset, tenant deleted).
    public func end(principal: DashboardPrincipal) async throws(TenancyError) {
        do { _ = try await repository.deleteDashboardSignIns(of: principal) } catch { throw TenancyError(error) }
    }

    /// Deletes the sign-ins expired at `moment`; returns how many went.
    public func deleteExpired(at moment: Date) async throws(TenancyError) -> Int {
        do { return try await repository.deleteExpiredDashboardSignIns(at: moment) } catch { throw TenancyError(error) }
    }

    /// True if `presented` is the CSRF token of `signIn` (constant-time).
    public func isCSRFToken(_ presented: String?, of signIn: DashboardSignIn) -> Bool {
        guard let presented else { return false }
        return constantTimeEqual(Array(presented.utf8), Array(signIn.csrfToken.utf8))
    }

    /// SHA-256 of the cookie's id, the row's key: a database dump yields no cookie that works.
    public static func idHash(_ id: String) -> [UInt8] { Array(SHA256.hash(data: Array(id.utf8))) }

    private func csrfToken(for id: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Array("dashboard-csrf\u{0}\(id)".utf8), using: csrfKey)
        return SecureRandom.base64URL(encoding: mac)
    }

    /// 43 base64url characters, as ``create(for:generation:)`` issues; anything else is not looked up.
    private static func isWellFormed(_ id: String) -> Bool {
        id.utf8.count == 43 && id.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || byte == 0x2D || byte == 0x5F
        }
    }
}
