import App
import ArgumentParser
import Foundation
import Tenancy

struct MigrateCredentialsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate-credentials",
        abstract: "Move every tenant's sealed credentials between auth/ files and the system database.",
        discussion: """
            Stop every node first. Each record is copied as it is sealed, checked to open under its tenant, read back,
            and only then removed from the source; an interrupted run is finished by running the command again.
            Prints one line per tenant and exits 1 if any tenant could not be moved.
            """)

    @OptionGroup var storage: StorageOptions

    @Flag(name: .customLong("to-database"), help: "Move credentials from auth/ into the system database.")
    var toDatabase = false

    @Flag(name: .customLong("to-files"), help: "Move credentials from the system database into auth/.")
    var toFiles = false

    func validate() throws {
        guard toDatabase != toFiles else { throw ValidationError("give exactly one of --to-database and --to-files") }
    }

    func run() async throws {
        let direction: CredentialMigration.Direction = toDatabase ? .toDatabase : .toFiles
        let failures = try await withServices(storage) { services in
            let migration = CredentialMigration(services: services, direction: direction)
            do { try await migration.checkNoSessionRuns() } catch { throw fail("\(error)", code: 1) }
            if direction == .toFiles {
                // The files are only as durable as this directory: on an ephemeral one (a container's emptyDir) they die with it.
                let auth = URL(fileURLWithPath: services.configuration.authDirectory).standardizedFileURL.path
                print("writing credential files to \(auth); it must be a persistent directory every node of this deployment reads")
            }
            var (moved, failures) = (0, 0)
            try await migration.run { tenant, outcome in
                switch outcome {
                case .moved(let records):
                    moved += 1
                    print("moved \(tenant) (\(records) record\(records == 1 ? "" : "s"))")
                case .nothingToMove: break
                case .conflict(let file, let removed):
                    failures += 1
                    print("conflict \(tenant): '\(file)' differs in the destination; both left as they are, the tenant stays in the source"
                        + Self.rolledBack(removed))
                case .unreadable(let file, let reason, let removed):
                    failures += 1
                    print("unreadable \(tenant): \(reason); '\(file)' left in the source, the tenant stays there" + Self.rolledBack(removed))
                }
                fflush(nil)
            }
            print("done: \(moved) tenant(s) moved \(direction.rawValue), \(failures) left behind")
            if direction == .toDatabase && services.configuration.effectiveCredentialsLocation == .files {
                print("note: start the nodes with --credentials database (the default with PostgreSQL)")
            } else if direction == .toFiles && services.configuration.effectiveCredentialsLocation == .database {
                print("note: start the nodes with --credentials files")
            }
            return failures
        }
        if failures > 0 { throw ExitCode(1) }
    }

    /// What a failed tenant's rollback did, for its line.
    static func rolledBack(_ removed: Int) -> String {
        removed == 0 ? "" : " (\(removed) copied record\(removed == 1 ? "" : "s") removed from the destination again)"
    }
}
