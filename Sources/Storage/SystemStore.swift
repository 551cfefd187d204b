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
