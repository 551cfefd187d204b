import Foundation
import Tenancy

/// Dashboard sign-ins (in the system database, shared by every node; see ``DashboardSignIns``) and this node's open
/// event streams of them, closed at once when a sign-in ends here and at the next re-check when it ends elsewhere.
actor DashboardSessions {
    /// At most this many open event streams per sign-in on one node (a few browser tabs).
    static let streamsPerSession = 4

    /// The sign-ins themselves.
    nonisolated let signIns: DashboardSignIns
    /// The open event streams of each sign-in on this node, by its id, with the principal they belong to.
    private var streams: [String: (principal: DashboardPrincipal, sinks: [UUID: AsyncStream<String>.Continuation])] = [:]

    init(signIns: DashboardSignIns) {
        self.signIns = signIns
    }

    /// Signs `principal` in, bound to its credential generation.
    nonisolated func create(for principal: DashboardPrincipal, generation: String) async throws -> DashboardSignIn {
        do { return try await signIns.create(for: principal, generation: generation) } catch { throw APIError.from(error) }
    }

    /// The live sign-in this cookie names, if any: one database read.
    nonisolated func session(id: String?) async throws -> DashboardSignIn? {
        do { return try await signIns.signIn(id: id) } catch { throw APIError.from(error) }
    }

    /// Signs out on every node and closes this node's streams of the sign-in.
    func remove(id: String) async throws {
        closeStreams(session: id)
        do { try await signIns.end(id: id) } catch { throw APIError.from(error) }
    }

    /// Ends every sign-in of `principal` on every node (its token was rotated, its OTP reset or it was deleted) and
    /// closes this node's streams of them; the credential-generation check refuses them even if the delete failed.
    func end(principal: DashboardPrincipal) async {
        for (id, entry) in streams where entry.principal == principal { closeStreams(session: id) }
        try? await signIns.end(principal: principal)
    }

    /// Whether an event stream may open.
    enum StreamAdmission: Sendable, Equatable {
        /// Registered; it is closed when the sign-in ends.
        case opened
        /// The sign-in has ``DashboardSessions/streamsPerSession`` open on this node already.
        case tooMany
    }

    /// Registers an open event stream of `session`, unless it has too many open here.
    func addStream(_ continuation: AsyncStream<String>.Continuation, key: UUID, session: DashboardSignIn) -> StreamAdmission {
        guard (streams[session.id]?.sinks.count ?? 0) < Self.streamsPerSession else { return .tooMany }
        streams[session.id, default: (session.principal, [:])].sinks[key] = continuation
        return .opened
    }

    /// Forgets a stream that closed on its own.
    func removeStream(key: UUID, session id: String) {
        streams[id]?.sinks[key] = nil
        if streams[id]?.sinks.isEmpty == true { streams[id] = nil }
    }

    /// Closes this node's streams of a sign-in that ended (here, on another node, or by expiry).
    func closeStreams(session id: String) {
        for sink in (streams.removeValue(forKey: id)?.sinks ?? [:]).values { sink.finish() }
    }
}
