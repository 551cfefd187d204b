import Foundation
import Logging
import SessionPool
import Storage
import Tenancy
import WahostBasics
import Webhooks

/// The opened parts every command needs: the system database, tenants and credential files.
public struct WahostServices: Sendable {
    /// The system database.
    public let store: any SystemStore
    /// Tenants and their secrets.
    public let tenants: TenantDirectory
    /// Encrypted credential files under `auth/` (where credentials live in files mode, and what moves in a migration).
    public let credentials: EncryptedCredentialStore
    /// Where the tenants' credential records live: ``credentials``, or the system database's rows.
    public let credentialRecords: any CredentialFiles
    /// The lease generations this process took, fencing its writes of session state.
    public let leaseFences: LeaseFences
    /// The configuration it was opened with.
    public let configuration: WahostConfiguration
    /// The durable per-tenant event log's writer (one per process).
    public let eventLog: EventLogWriter
    /// The master key the tenants' data keys derive from.
    let masterKey: MasterKey

    /// Webhook configuration over this database and master key.
    public var webhooks: WebhookSettings {
        WebhookSettings(repository: store, masterKey: masterKey, allowPrivate: configuration.allowPrivateWebhooks)
    }
    /// Dashboard sign-ins over this database and master key, shared by every node.
    public var dashboardSignIns: DashboardSignIns { DashboardSignIns(repository: store, masterKey: masterKey) }
    /// The tenants' recent Signal records, sealed, while this node holds their leases (one per process, bounded).
    let sealedRecordCache = SealedRecordCache()

    /// Opens storage and loads the master key; `tenancyConfiguration` tunes hashing and lockout.
    public static func open(
        _ configuration: WahostConfiguration, tenancyConfiguration: TenantDirectory.Configuration = .init(), logger: Logger
    ) async throws -> WahostServices {
        try FileManager.default.createDirectory(atPath: configuration.dataDirectory, withIntermediateDirectories: true)
        let masterKey = try MasterKeyLoader.load(environmentValue: configuration.masterKeyBase64, authDirectory: configuration.authDirectory)
        let credentials = try EncryptedCredentialStore(directory: configuration.authDirectory, masterKey: masterKey)
        let store = try await SystemStoreFactory.open(
            databaseURL: configuration.databaseURL, dataDirectory: configuration.dataDirectory, logger: logger)
        let tenants = TenantDirectory(
            repositories: store, masterKey: masterKey, configuration: tenancyConfiguration, logger: logger,
            credentialsRemain: { credentials.holdsFiles(tenant: $0) })
        let leaseFences = LeaseFences(nodeID: configuration.nodeID)
        let credentialRecords: any CredentialFiles =
            switch configuration.effectiveCredentialsLocation {
            case .files: credentials
            case .database: DatabaseCredentialStore(repository: store, masterKey: masterKey, fences: leaseFences)
            }
        return WahostServices(
            store: store, tenants: tenants, credentials: credentials, credentialRecords: credentialRecords, leaseFences: leaseFences,
            configuration: configuration,
            eventLog: EventLogWriter(repository: store, logger: logger), masterKey: masterKey)
    }

    /// A tenant's Signal records, sealed in the system database under its current row.
    public func signalStore(for tenant: TenantName) -> TenantSignalStore {
        let tenants = self.tenants
        return TenantSignalStore(
            tenant: tenant, masterKey: masterKey, repository: store, writer: eventLog, fences: leaseFences, cache: sealedRecordCache,
            tenantRow: { try await tenants.tenant(named: tenant) })
    }

    /// `sqlite` or `postgres`.
    public var backendName: String { store.backendName }

    /// A tenant's WhatsApp credentials, sealed under its current row, where this deployment keeps them.
    public func credentialStore(for tenant: TenantName) -> TenantCredentialStore {
        let tenants = self.tenants
        return TenantCredentialStore(tenant: tenant, files: credentialRecords, tenantRow: { try await tenants.tenant(named: tenant) })
    }

    /// Deletes a tenant: its credential files for good, then its rows; a failed wipe keeps the rows, so a retry finds the tenant.
    public func deleteTenant(_ name: TenantName, actor: String) async throws {
        try credentials.wipe(tenant: name)
        try await tenants.deleteTenant(name, actor: actor)
    }

    /// On a first start with no tenant: creates tenant `default` (with MFA) and the operator token, to be shown once.
    public func bootstrapIfEmpty() async throws -> FirstStart? {
        guard try await tenants.listTenants().isEmpty else { return nil }
        let defaultName = try TenantName("default")
        let issued: IssuedTenant
        do {
            issued = try await tenants.createTenant(defaultName, mfa: true, actor: "system")
        } catch where error.kind == .tenantExists {
            return nil  // another node bootstrapped at the same moment
        }
        let operatorToken =
            try await tenants.hasOperatorToken() ? nil : try await tenants.issueOperatorToken(actor: "system")
        return FirstStart(tenant: issued, operatorToken: operatorToken)
    }

    /// Closes the database, waiting at most `limit`: a stop must not hang on a connection pool that does not wind down.
    public func close(within limit: Duration = .seconds(10), logger: Logger? = nil) async {
        let store = self.store
        do {
            try await Deadline.run(within: limit, { try? await store.close() }) { DatabaseCloseTimedOut(limit: $0) }
        } catch {
            logger?.warning("the database did not close in time; exiting without waiting for it", metadata: ["after_seconds": "\(limit.components.seconds)"])
        }
    }
}

/// What a first start created, to print once.
public struct FirstStart: Sendable {
    /// The `default` tenant with its token and OTP enrolment.
    public let tenant: IssuedTenant
    /// The operator token, if this start issued it.
    public let operatorToken: AdminToken?
}

/// The database's connections did not close within the limit.
struct DatabaseCloseTimedOut: Error {
    let limit: Duration
}
