import Foundation
import Logging
import PostgresNIO
import Tenancy
import WahostBasics

/// Every statement goes through `run` or `transaction`: bounded in time, failed fast during an outage, errors mapped.
extension PostgresSystemStore {
    @discardableResult
    func run<T: Sendable>(_ body: @escaping @Sendable (PostgresClient, Logger) async throws -> T) async throws(RepositoryError) -> T {
        let (client, logger) = (self.client, self.logger)
        return try await bounded { try await body(client, logger) }
    }

    @discardableResult
    func transaction<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection, Logger) async throws -> T) async throws(RepositoryError) -> T {
        let (client, logger) = (self.client, self.logger)
        return try await bounded { try await client.withTransaction(logger: logger) { connection in try await body(connection, logger) } }
    }

    /// Runs one call within ``callDeadline`` (the client queues calls while it cannot connect, up to a minute), fails it
    /// at once while the database is known to be away (but for a probe a second), and reports outages once.
    fileprivate func bounded<T: Sendable>(_ call: @escaping @Sendable () async throws -> T) async throws(RepositoryError) -> T {
        if let refusal = outage.refusal() { throw refusal }
        do {
            let value = try await Deadline.run(within: callDeadline, call) {
                RepositoryError(.unavailable, "PostgreSQL did not answer within \($0.components.seconds) s")
            }
            outage.succeeded()
            return value
        } catch {
            let mapped = Self.map(error)
            outage.failed(mapped)
            throw mapped
        }
    }

    static func map(_ error: any Error) -> RepositoryError {
        if let error = error as? RepositoryError { return error }
        if let error = error as? PostgresTransactionError {
            if let inner = error.closureError ?? error.beginError ?? error.commitError { return map(inner) }
            return RepositoryError(.unavailable, "PostgreSQL transaction failed")
        }
        if let error = error as? PSQLError {
            switch error.serverInfo?[.sqlState] {
            case "23505": return RepositoryError(.conflict, "row already exists")
            case "23503": return RepositoryError(.notFound, "referenced tenant does not exist")
            default:
                let message = error.serverInfo?[.message] ?? "\(error.code)"
                return RepositoryError(.unavailable, "PostgreSQL: \(message)")
            }
        }
        return RepositoryError(.unavailable, "PostgreSQL: \(error)")
    }
}
