import Logging
import Tenancy

/// Opens the system database named by a `--database-url`.
public enum SystemStoreFactory {
    /// `sqlite://PATH` (default `<data-dir>/system.db`) or `postgres://…`; throws on anything else.
    public static func open(databaseURL: String?, dataDirectory: String, logger: Logger) async throws(RepositoryError) -> any SystemStore {
        guard let url = databaseURL, !url.isEmpty else { return try SQLiteSystemStore(path: dataDirectory + "/system.db", logger: logger) }
        if url.hasPrefix("sqlite://") {
            let path = String(url.dropFirst("sqlite://".count))
            guard !path.isEmpty else { throw RepositoryError(.unavailable, "sqlite:// URL has no path") }
            return try SQLiteSystemStore(path: path, logger: logger)
        }
        if url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") {
            let parsed: PostgresURL
            do { parsed = try PostgresURL(url) } catch { throw RepositoryError(.unavailable, error.description) }
            return try await PostgresSystemStore(url: parsed, logger: logger)
        }
        throw RepositoryError(.unavailable, "unsupported database URL scheme; use sqlite:// or postgres://")
    }
}
