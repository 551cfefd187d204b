import Foundation
import Tenancy

/// A system database backend: every repository port, plus life-cycle.
public protocol SystemStore: SystemRepositories {
    /// `sqlite` or `postgres`, for logs and `/readyz`.
    var backendName: String { get }
    /// Succeeds when the database answers a trivial query.
    func ping() async throws(RepositoryError)
    /// Closes connections; the store is unusable afterwards.
    func close() async throws(RepositoryError)
}

extension Date {
    /// Milliseconds since 1970, as stored in the database.
    var milliseconds: Int64 { Int64((timeIntervalSince1970 * 1000).rounded(.down)) }

    init(milliseconds: Int64) { self.init(timeIntervalSince1970: TimeInterval(milliseconds) / 1000) }
}

/// The `session_desired` rows (tenant, desired) of either backend as the port returns them; a row that is not a valid
/// tenant name and state means the table is corrupt.
func decodeDesiredStates(_ rows: [(String, String)]) throws(RepositoryError) -> [TenantName: DesiredSessionState] {
    var result: [TenantName: DesiredSessionState] = [:]
    for (tenant, desired) in rows {
        guard let name = try? TenantName(tenant), let state = DesiredSessionState(rawValue: desired) else {
            throw RepositoryError(.corrupt, "session_desired holds an invalid row")
        }
        result[name] = state
    }
    return result
}
