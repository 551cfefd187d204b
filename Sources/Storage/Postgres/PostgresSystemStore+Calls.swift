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
        let started = ContinuousClock.now
        do {
            let value = try await Deadline.run(within: callDeadline, call) { CallTimedOut(limit: $0) }
            outage.succeeded()
            return value
        } catch {
            let mapped = Self.map(error)
            // A call out of time while others got through waited on a row lock (a node paused mid-transaction holds its
            // locks until PostgreSQL ends it), and one that spanned this node's own pause met only the pause: that call
            // fails, the database is not reported away for every other call.
            if Self.meansUnreachable(error) {
                outage.failed(mapped, call: StorageOutage.FailedCall(startedAt: started, deadline: callDeadline, timedOut: error is CallTimedOut))
            }
            throw mapped
        }
    }

    /// A call the deadline ended.
    struct CallTimedOut: Error {
        let limit: Duration
    }

    /// Whether a failure says the server cannot be reached or is going away (a refused statement does not).
    static func meansUnreachable(_ error: any Error) -> Bool {
        switch error {
        case is CallTimedOut: return true
        case let error as PostgresTransactionError:
            return (error.closureError ?? error.beginError ?? error.commitError).map(meansUnreachable) ?? true
        case let error as PSQLError:
            // No SQLSTATE: the connection failed. 08: connection exceptions, 57P: shutdown, 53: out of resources.
            guard let state = error.serverInfo?[.sqlState] else { return true }
            return state.hasPrefix("08") || state.hasPrefix("57P") || state.hasPrefix("53")
        case is RepositoryError: return false
        default: return true  // the pool's own errors (circuit breaker, shutdown) and the channel's
        }
    }

    static func map(_ error: any Error) -> RepositoryError {
        if let error = error as? RepositoryError { return error }
        if let error = error as? CallTimedOut { return RepositoryError(.unavailable, "PostgreSQL did not answer within \(error.limit.components.seconds) s") }
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
