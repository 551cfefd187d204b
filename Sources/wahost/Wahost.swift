import App
import ArgumentParser
import Foundation
import Logging
import Tenancy

struct Wahost: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wahost",
        abstract: "Hosts linked WhatsApp sessions for many tenants.",
        subcommands: [Serve.self, TenantCommand.self, SendCommand.self, OperatorCommand.self, SimCommand.self, DemoCommand.self,
            MigrateCredentialsCommand.self,
        ]
    )
}

/// Options every command shares: where the data lives.
struct StorageOptions: ParsableArguments {
    @Option(name: .customLong("data-dir"), help: "Directory holding system.db and auth/ (env WAHOST_DATA_DIR, default .).")
    var dataDirectory: String?

    @Option(name: .customLong("database-url"), help: "sqlite://PATH or postgres://… (env WAHOST_DATABASE_URL).")
    var databaseURL: String?

    @Option(
        name: .customLong("credentials"),
        help: "Where sealed credentials live: files (auth/) or database (env WAHOST_CREDENTIALS; default database with PostgreSQL, else files).")
    var credentials: String?

    func validate() throws {
        guard let text = credentialsText, WahostConfiguration.CredentialsLocation(rawValue: text) == nil else { return }
        throw ValidationError("--credentials / WAHOST_CREDENTIALS must be 'files' or 'database', not '\(text)'")
    }

    private var credentialsText: String? {
        credentials ?? ProcessInfo.processInfo.environment["WAHOST_CREDENTIALS"].flatMap { $0.isEmpty ? nil : $0 }
    }

    func configuration() -> WahostConfiguration {
        let environment = ProcessInfo.processInfo.environment
        var configuration = WahostConfiguration(
            dataDirectory: dataDirectory ?? environment["WAHOST_DATA_DIR"] ?? ".",
            databaseURL: databaseURL ?? environment["WAHOST_DATABASE_URL"],
            masterKeyBase64: environment["WAHOST_MASTER_KEY"]
        )
        configuration.credentialsLocation = credentialsText.flatMap(WahostConfiguration.CredentialsLocation.init(rawValue:))
        return configuration
    }
}

/// Prints `message` to standard error and exits with `code`.
func fail(_ message: String, code: Int32) -> ExitCode {
    FileHandle.standardError.write(Data(("error: " + message + "\n").utf8))
    return ExitCode(code)
}

/// Opens the services, mapping failures to a one-line message and exit code 1.
func openServices(_ options: StorageOptions, logger: Logger) async throws -> WahostServices {
    do {
        return try await WahostServices.open(options.configuration(), logger: logger)
    } catch {
        throw fail("\(error)", code: 1)
    }
}

/// Opens the services, runs `body`, and closes them whatever happens.
func withServices<T>(_ options: StorageOptions, _ body: (WahostServices) async throws -> T) async throws -> T {
    let services = try await openServices(options, logger: commandLogger())
    do {
        let result = try await body(services)
        await services.close()
        return result
    } catch {
        await services.close()
        throw error
    }
}

/// A logger for commands: warnings and worse, to standard error.
func commandLogger() -> Logger {
    var logger = Logger(label: "wahost") { StreamLogHandler.standardError(label: $0) }
    logger.logLevel = .warning
    return logger
}

/// Writes one JSON object to standard output with stable key order.
func printJSON(_ value: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}
