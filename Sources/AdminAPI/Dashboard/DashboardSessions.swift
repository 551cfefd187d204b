import Foundation
import Tenancy

/// Who a dashboard session belongs to.
enum DashboardPrincipal: Sendable, Hashable {
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
    /// The principal's credential generation at sign-in; the session ends when it no longer matches.
    let credentialGeneration: String
}

/// Signed-in dashboard sessions, in memory (a restart signs everyone out), bounded, with expiry, and their live streams.
actor DashboardSessions {
    /// How long a sign-in lasts.
    static let lifetime: TimeInterval = 8 * 3600
    /// At most this many sessions are kept; the oldest are dropped first.
    static let capacity = 10_000
    /// At most this many sessions per principal: signing in again and again pushes out only one's own oldest sign-ins.
    static let capacityPerPrincipal = 20
    /// At most this many open event streams per session (a few browser tabs).
    static let streamsPerSession = 4

    private var sessions: [String: DashboardSession] = [:]
    private var order: [String] = []
    /// Each principal's live sessions, oldest first (at most ``capacityPerPrincipal``).
    private var byPrincipal: [DashboardPrincipal: [String]] = [:]
    /// The open event streams of each session, closed when the session ends.
    private var streams: [String: [UUID: AsyncStream<String>.Continuation]] = [:]

    /// Creates a session for `principal`, bound to its current credential generation.
    func create(for principal: DashboardPrincipal, generation: String, now: Date = Date()) -> DashboardSession {
        let session = DashboardSession(
            id: Self.randomToken(), principal: principal, csrfToken: Self.randomToken(), expiresAt: now.addingTimeInterval(Self.lifetime),
            credentialGeneration: generation)
        sessions[session.id] = session
        order.append(session.id)
        byPrincipal[principal, default: []].append(session.id)
        if order.count > Self.capacity * 2 { order.removeAll { sessions[$0] == nil } }
        while let own = byPrincipal[principal], own.count > Self.capacityPerPrincipal { remove(id: own[0]) }
        while sessions.count > Self.capacity, !order.isEmpty { remove(id: order.removeFirst()) }
        return session
    }

    /// The live session with this id, if any.
    func session(id: String?, now: Date = Date()) -> DashboardSession? {
        guard let id, let session = sessions[id] else { return nil }
        guard session.expiresAt > now else {
            remove(id: id)
            return nil
        }
        return session
    }

    /// Ends a session and closes its event streams.
    func remove(id: String) {
        if let principal = sessions.removeValue(forKey: id)?.principal {
            byPrincipal[principal]?.removeAll { $0 == id }
            if byPrincipal[principal]?.isEmpty == true { byPrincipal[principal] = nil }
        }
        for stream in (streams.removeValue(forKey: id) ?? [:]).values { stream.finish() }
    }

    /// Ends every session of `principal` (after its token was rotated, its OTP reset or the tenant deleted).
    func end(principal: DashboardPrincipal) {
        for id in byPrincipal[principal] ?? [] { remove(id: id) }
    }

    /// Whether an event stream may open.
    enum StreamAdmission: Sendable, Equatable {
        /// Registered; it is closed when the session ends.
        case opened
        /// The session ended meanwhile.
        case signedOut
        /// The session has ``DashboardSessions/streamsPerSession`` open already.
        case tooMany
    }

    /// Registers an open event stream of session `id`, unless the session ended or has too many open.
    func addStream(_ continuation: AsyncStream<String>.Continuation, key: UUID, session id: String) -> StreamAdmission {
        guard sessions[id] != nil else { return .signedOut }
        guard (streams[id]?.count ?? 0) < Self.streamsPerSession else { return .tooMany }
        streams[id, default: [:]][key] = continuation
        return .opened
    }

    /// Forgets a stream that closed on its own.
    func removeStream(key: UUID, session id: String) {
        streams[id]?[key] = nil
        if streams[id]?.isEmpty == true { streams[id] = nil }
    }

    /// 256 random bits, base64url.
    static func randomToken() -> String { SecureRandom.base64URL(32) }

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
