import Foundation
import Storage
import Tenancy
import WahostBasics

/// Moves every tenant's sealed credential records between `auth/` files and database rows: copied as they are
/// (the sealing is the same), checked to open under the tenant, read back, and only then removed from the source.
///
/// Resumable: a tenant left half-moved by an interrupted run is finished by the next one (the copy is idempotent;
/// nothing is removed from the source before the destination holds the same bytes). A tenant that stops on a
/// conflict or an unreadable record is rolled back: the destination keeps no copy of its records, only its own.
public struct CredentialMigration: Sendable {
    /// Which way the records move.
    public enum Direction: String, Sendable {
        case toDatabase = "to-database"
        case toFiles = "to-files"
    }

    /// What happened to one tenant.
    public enum Outcome: Sendable, Equatable {
        /// Its records now live only in the destination.
        case moved(records: Int)
        /// Nothing of it was left in the source.
        case nothingToMove
        /// The destination holds other bytes under a name the source has; both are left as they are, and the copies
        /// of the tenant's other records are removed from the destination again (`removedCopies` of them).
        case conflict(file: String, removedCopies: Int)
        /// A record does not open as this tenant's (tampered, moved or another master key); it is left in the source,
        /// and the copies of the tenant's other records are removed from the destination again.
        case unreadable(file: String, reason: String, removedCopies: Int)
    }

    let services: WahostServices
    let direction: Direction

    public init(services: WahostServices, direction: Direction) {
        self.services = services
        self.direction = direction
    }

    /// Refuses while any node holds a live lease: sessions must not write credentials while they move.
    public func checkNoSessionRuns(now: Date = Date()) async throws {
        let live = try await services.store.leases().filter { $0.expiresAt > now }
        guard live.isEmpty else {
            let nodes = Set(live.map(\.nodeID)).sorted().joined(separator: ", ")
            throw ConfigurationError("\(live.count) session(s) still run (node(s) \(nodes)); stop every node before moving credentials")
        }
        // A node without sessions could still pair one meanwhile.
        let ttl = services.configuration.leaseTTL.timeInterval
        let beating = try await services.store.clusterNodes().filter { now.timeIntervalSince($0.lastBeatAt) < ttl }.map(\.nodeID)
        guard beating.isEmpty else {
            throw ConfigurationError("node(s) \(beating.joined(separator: ", ")) still run; stop every node before moving credentials")
        }
    }

    /// Moves every tenant in name order, reporting each outcome as it lands.
    public func run(report: (TenantName, Outcome) -> Void) async throws {
        let database = DatabaseCredentialStore(repository: services.store, masterKey: services.masterKey, fences: nil)
        let (source, destination): (any CredentialFiles, any CredentialFiles) =
            direction == .toDatabase ? (services.credentials, database) : (database, services.credentials)
        for tenant in try await services.tenants.listTenants().sorted(by: { $0.name.rawValue < $1.name.rawValue }) {
            report(tenant.name, try await move(tenant, from: source, to: destination))
        }
    }

    private func move(_ tenant: Tenant, from source: any CredentialFiles, to destination: any CredentialFiles) async throws -> Outcome {
        let names = try await source.fileNames(of: tenant.name)
        guard !names.isEmpty else { return .nothingToMove }
        let sealer = CredentialSealer(masterKey: services.masterKey)
        let destinationWasEmpty = try await destination.fileNames(of: tenant.name).isEmpty
        var copied: [(String, [UInt8])] = []
        for name in names {
            guard let sealed = try await source.sealedBytes(file: name, tenant: tenant.name) else { continue }
            do { _ = try sealer.open(sealed, file: name, tenant: tenant.name, instanceID: tenant.instanceID) } catch {
                let removed = try await removeCopies(of: tenant.name, names: names, from: source, in: destination, wipe: destinationWasEmpty)
                return .unreadable(file: name, reason: error.description, removedCopies: removed)
            }
            if let existing = try await destination.sealedBytes(file: name, tenant: tenant.name) {
                guard existing == sealed else {
                    let removed = try await removeCopies(of: tenant.name, names: names, from: source, in: destination, wipe: destinationWasEmpty)
                    return .conflict(file: name, removedCopies: removed)
                }
            } else {
                try await destination.storeSealed(sealed, file: name, tenant: tenant.name)
            }
            copied.append((name, sealed))
        }
        for (name, sealed) in copied {
            guard try await destination.sealedBytes(file: name, tenant: tenant.name) == sealed else {
                throw ConfigurationError("credential record '\(name)' of tenant '\(tenant.name)' did not read back as written; nothing was removed")
            }
        }
        for (name, sealed) in copied {
            // Removed only while still the bytes copied: a record rewritten meanwhile is kept, and the run fails.
            guard try await source.sealedBytes(file: name, tenant: tenant.name) == sealed else {
                throw ConfigurationError("credential record '\(name)' of tenant '\(tenant.name)' changed while it moved; is a node running?")
            }
            try await source.delete(file: name, tenant: tenant.name)
        }
        if try await source.fileNames(of: tenant.name).isEmpty { try await source.wipe(tenant: tenant.name) }
        return .moved(records: copied.count)
    }

    /// Rolls a tenant that cannot move back: deletes each destination record holding the very bytes of the source's
    /// record of that name (this run's copy, or an interrupted run's), so the tenant lives wholly in the source again;
    /// a destination record with other bytes is never touched. Returns how many were deleted.
    private func removeCopies(
        of tenant: TenantName, names: [String], from source: any CredentialFiles, in destination: any CredentialFiles, wipe: Bool
    ) async throws -> Int {
        var removed = 0
        for name in names {
            guard let sealed = try await source.sealedBytes(file: name, tenant: tenant),
                try await destination.sealedBytes(file: name, tenant: tenant) == sealed
            else { continue }
            try await destination.delete(file: name, tenant: tenant)
            removed += 1
        }
        // A tenant directory this run created goes too (the destination was empty and holds nothing again).
        if wipe, try await destination.fileNames(of: tenant).isEmpty { try await destination.wipe(tenant: tenant) }
        return removed
    }

    /// What `serve` makes of credentials kept where this node does not read them: a refusal when a tenant's records
    /// are only there (its session would look unpaired), a warning when they are copies next to the ones it reads.
    public static func startupCheck(_ services: WahostServices) async throws -> (refusal: String?, warning: String?) {
        let tenants = try await services.tenants.listTenants().map(\.name)
        switch services.configuration.effectiveCredentialsLocation {
        case .database:
            let left = tenants.filter { !services.credentials.files(tenant: $0).isEmpty }
            guard !left.isEmpty else { return (nil, nil) }
            return (
                "\(left.count) tenant(s) have credentials under auth/ but this node keeps credentials in the database (\(listed(left))): "
                    + "stop every node and run `wahost migrate-credentials --to-database`, or start with --credentials files", nil
            )
        case .files:
            let rows = DatabaseCredentialStore(repository: services.store, masterKey: services.masterKey, fences: nil)
            var (only, alongside): ([TenantName], [TenantName]) = ([], [])
            for tenant in tenants {
                guard try await !rows.fileNames(of: tenant).isEmpty else { continue }
                if services.credentials.files(tenant: tenant).isEmpty { only.append(tenant) } else { alongside.append(tenant) }
            }
            let refusal = only.isEmpty ? nil : "\(only.count) tenant(s) have credentials only in the database but this node keeps credentials "
                + "in files (\(listed(only))): stop every node and run `wahost migrate-credentials --to-files`, or start with --credentials database"
            let warning = alongside.isEmpty ? nil : "\(alongside.count) tenant(s) have credential rows in the database next to their files "
                + "under auth/ (\(listed(alongside))); the files are used. Stop every node and run `wahost migrate-credentials --to-files` "
                + "to settle them (rows with other bytes than the files are reported as conflicts)"
            return (refusal, warning)
        }
    }

    /// The first few names, for a message.
    private static func listed(_ tenants: [TenantName]) -> String {
        tenants.prefix(5).map(\.rawValue).joined(separator: ", ") + (tenants.count > 5 ? ", …" : "")
    }
}
