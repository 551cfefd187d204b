import Foundation
import Tenancy

/// Who a dashboard session belongs to.
enum DashboardPrincipal: Sendable, Equatable {
    /// A tenant's owner, signed in with the tenant's token (and OTP).
    case tenant(TenantName)
    /// The operator, signed in with the operator token.
    case `operator`
}

/// A signed-in browser: the cookie names it, the CSRF token guards its forms.
struct DashboardSession: Sendable {
    let id: String
    let principal: DashboardPrincipal
    let csrfToken: String
    let expiresAt: Date
}

/// Signed-in dashboard sessions, in memory (a restart signs everyone out), bounded, with expiry.
actor DashboardSessions {
    /// How long a sign-in lasts.
    static let lifetime: TimeInterval = 8 * 3600
    /// At most this many sessions are kept; the oldest are dropped first.
    static let capacity = 10_000

    private var sessions: [String: DashboardSession] = [:]
    private var order: [String] = []

    /// Creates a session for `principal`.
    func create(for principal: DashboardPrincipal, now: Date = Date()) -> DashboardSession {
        let session = DashboardSession(
            id: Self.randomToken(), principal: principal, csrfToken: Self.randomToken(), expiresAt: now.addingTimeInterval(Self.lifetime))
        sessions[session.id] = session
        order.append(session.id)
        if order.count > Self.capacity * 2 { order.removeAll { sessions[$0] == nil } }
        while sessions.count > Self.capacity, !order.isEmpty { sessions[order.removeFirst()] = nil }
        return session
    }

    /// The live session with this id, if any.
    func session(id: String?, now: Date = Date()) -> DashboardSession? {
        guard let id, let session = sessions[id] else { return nil }
        guard session.expiresAt > now else {
            sessions[id] = nil
            return nil
        }
        return session
    }

    /// Ends a session.
    func remove(id: String) { sessions[id] = nil }

    /// 256 random bits, base64url.
    static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        return Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// Constant-time comparison of two tokens.
    static func same(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8)
        let y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var difference: UInt8 = 0
        for index in x.indices { difference |= x[index] ^ y[index] }
        return difference == 0
    }
}
