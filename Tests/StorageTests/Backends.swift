import Foundation
import Logging
import PostgresNIO
import Storage
import Tenancy
import TestSupport
import Testing

/// The backends the contract suite runs against.
enum Backend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite
    case postgres

    var testDescription: String { rawValue }

    /// The backends available in this run; PostgreSQL is required under `./ops/test`.
    static var available: [Backend] { ExternalTools.postgresEnabled ? [.sqlite, .postgres] : [.sqlite] }

    /// A fresh, empty, migrated store: a new SQLite file, or a new PostgreSQL database.
    func makeStore() async throws -> any SystemStore {
        switch self {
        case .sqlite:
            let directory = try makeTemporaryDirectory("wahost-sqlite")
            return try SQLiteSystemStore(path: directory + "/system.db")
        case .postgres:
            guard let server = ExternalTools.postgres else {
                throw TestSupportError("POSTGRES_* is not set; ./ops/test starts PostgreSQL for these tests")
            }
            let name = "wahost_test_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
            try await Self.createDatabase(name, server: server)
            let url = try PostgresURL("postgres://\(server.user)@\(server.host):\(server.port)/\(name)")
            return try await PostgresSystemStore(url: url, logger: Logger(label: "test.postgres"))
        }
    }

    /// The URL for `makeStore`'s kind, for tests that open stores by URL (a new database each call).
    func makeDatabaseURL(directory: String) async throws -> String {
        switch self {
        case .sqlite:
            return "sqlite://" + directory + "/system.db"
        case .postgres:
            guard let server = ExternalTools.postgres else { throw TestSupportError("POSTGRES_* is not set") }
            let name = "wahost_test_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
            try await Self.createDatabase(name, server: server)
            return "postgres://\(server.user)@\(server.host):\(server.port)/\(name)"
        }
    }

    private static func createDatabase(_ name: String, server: (host: String, port: Int, user: String, database: String)) async throws {
        let configuration = PostgresClient.Configuration(
            host: server.host, port: server.port, username: server.user, password: nil, database: server.database, tls: .disable)
        let client = PostgresClient(configuration: configuration)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            try await client.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"))
            group.cancelAll()
        }
    }
}

/// Expects `body` to fail with a repository error of `kind`.
func expectRepositoryError(_ kind: RepositoryError.Kind, _ body: () async throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) async {
    do {
        try await body()
        Issue.record("expected a \(kind) error, but the call succeeded", sourceLocation: sourceLocation)
    } catch let error as RepositoryError {
        #expect(error.kind == kind, sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected a repository error, got \(error)", sourceLocation: sourceLocation)
    }
}
