import Foundation
import Storage
import Tenancy
import WahostBasics

/// Moves every tenant's sealed credential records between `auth/` files and database rows: copied as they are
/// (the sealing is the same), checked to open under the tenant, read back, and only then removed from the source.
///
/// Resumable: a tenant left half-moved by an interrupted run is finished by the next one (the copy is idempotent;
/// nothing is removed from the source before the destination holds the same bytes).
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
        /// The destination holds other bytes under a name the source has; both are left as they are.
        case conflict(file: String)
        /// A record does not open as this tenant's (tampered, moved or another master key); it is left in the source.
        case unreadable(file: String, reason: String)
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
        var copied: [(String, [UInt8])] = []
        for name in names {
            guard let sealed = try await source.sealedBytes(file: name, tenant: tenant.name) else { continue }
            do { _ = try sealer.open(sealed, file: name, tenant: tenant.name, instanceID: tenant.instanceID) } catch {
                return .unreadable(file: name, reason: error.description)
            }
            if let existing = try await destination.sealedBytes(file: name, tenant: tenant.name) {
                guard existing == sealed else { return .conflict(file: name) }
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

    /// Tenants with credential files under `auth/` although credentials live in the database: a deployment that
    /// switched to PostgreSQL without `migrate-credentials`, whose sessions would otherwise look unpaired.
    public static func tenantsLeftInFiles(_ services: WahostServices) async throws -> [TenantName] {
        guard services.configuration.effectiveCredentialsLocation == .database else { return [] }
        return try await services.tenants.listTenants().map(\.name).filter { !services.credentials.files(tenant: $0).isEmpty }
    }
}
