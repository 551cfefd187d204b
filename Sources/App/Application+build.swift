import AdminAPI
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import UnixSignals
import SessionPool
import Storage
import Tenancy
import Webhooks
import WhatsApp

/// Builds the pool and the HTTP application over opened services; the pool runs as a service of the application,
/// so SIGTERM stops accepting requests first, then closes sessions (no logout) and releases their leases.
public func buildApplication(
    services: WahostServices, logger: Logger, poolConfiguration: SessionPoolConfiguration? = nil
) throws -> some ApplicationProtocol {
    let pool = try makeSessionPool(services: services, logger: logger, configuration: poolConfiguration)
    return try buildApplication(services: services, pool: pool, logger: logger)
}

/// Runs `serve` until SIGTERM or SIGINT. The pool is stopped first, handing every session over while the HTTP
/// server still answers (forwarding to the new owners); then the server drains its requests and the background
/// services (webhook turns in flight) finish. Inside the application's own group the pool would be stopped last.
public func runServer(services: WahostServices, logger: Logger) async throws {
    let pool = try makeSessionPool(services: services, logger: logger)
    let app = try buildApplication(services: services, pool: pool, logger: logger, runsPool: false)
    // The pool hands sessions over at most a lease TTL late; past that and a minute more the process ends anyway.
    let watchdog = ShutdownWatchdog(limit: pool.leaseTTL + .seconds(60), logger: logger)
    let group = ServiceGroup(configuration: .init(services: [app, pool, watchdog], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
    try await group.run()
    logger.info("server and session pool stopped")
}

/// Builds the HTTP application around an existing pool (tests keep a handle on it); `runsPool`: the pool runs as one
/// of its services (else the caller runs it).
public func buildApplication(
    services: WahostServices, pool: SessionPool, logger: Logger, runsPool: Bool = true,
    demoPhone: (@Sendable (String) async throws -> Void)? = nil
) throws -> some ApplicationProtocol {
    var background: [any Service] = runsPool ? [pool] : []
    if let retention = services.configuration.auditRetention {
        background.append(LogRetention.audit(retention, services.store, logger: logger))
    }
    background.append(LogRetention.events(services.configuration.eventRetention, services.store, logger: logger))
    background.append(LogRetention.whatsAppCodes(services.tenants, logger: logger))
    background.append(LogRetention.dashboardSignIns(services.dashboardSignIns, logger: logger))
    background.append(
        WebhookDeliverer(
            repository: services.store, settings: services.webhooks, policy: services.configuration.webhookPolicy,
            node: pool.nodeID, logger: logger))
    return Application(
        router: try buildRouter(services: services, pool: pool, logger: logger, demoPhone: demoPhone),
        configuration: .init(address: .hostname(services.configuration.host, port: services.configuration.port), serverName: "wahost"),
        services: background,
        logger: logger
    )
}

/// The router with every wahost route over these services and pool.
public func buildRouter(
    services: WahostServices, pool: SessionPool, logger: Logger, demoPhone: (@Sendable (String) async throws -> Void)? = nil
) throws -> Router<AdminRequestContext> {
    _ = WahostMetrics.registry
    let store = services.store
    let credentials = services.credentials
    let tenants = services.tenants
    let dependencies = AdminAPIDependencies(
        tenants: tenants, pool: pool, audit: store, dashboardSignIns: services.dashboardSignIns,
        deleteTenant: { tenant, actor, address in
            // Files first: if the wipe fails the rows stay, the tenant still exists and a retry can finish the job.
            try credentials.wipe(tenant: tenant)
            try await tenants.deleteTenant(tenant, actor: actor, clientAddress: address)
        },
        storageReachable: {
            do {
                try await store.ping()
                return true
            } catch {
                logger.storageFailure("readiness check failed", error)
                return false
            }
        },
        backendName: store.backendName,
        metricsText: { WahostMetrics.text() },
        demoPhone: demoPhone, trustedProxies: services.configuration.trustedProxies, eventLog: services.eventLog,
        otpSender: services.configuration.otpSender, webhooks: services.webhooks,
        forwarding: NodeForwarding(nodeID: pool.nodeID, key: NodeForwardingKey(masterKey: services.masterKey)), cluster: store)
    return try buildAdminRouter(dependencies)
}

/// The session pool for these services: WhatsApp endpoint and trust from configuration, credentials under `auth/`.
public func makeSessionPool(
    services: WahostServices, logger: Logger, configuration: SessionPoolConfiguration? = nil
) throws -> SessionPool {
    let settings = services.configuration
    var client = settings.scaled(WhatsAppClientConfiguration(url: settings.whatsAppURL))
    if let hex = settings.whatsAppRootKeyHex {
        guard let key = decodeHex(hex), key.count == 32 else {
            throw ConfigurationError("WAHOST_WA_ROOT_KEY must be 64 hex characters (a 32-byte public key)")
        }
        client.rootPublicKey = key
    }
    if let file = settings.whatsAppCAFile {
        do { client.tlsConfiguration = try WhatsAppTLS.trusting(pemFile: file) } catch {
            throw ConfigurationError("WAHOST_WA_CA_FILE: \(error)")
        }
    }
    return SessionPool(
        configuration: configuration ?? settings.poolConfiguration,
        records: services.store, clientConfiguration: client,
        credentialStore: { services.credentialStore(for: $0) },
        logger: logger, eventLog: services.eventLog, signalStore: { services.signalStore(for: $0) }, leaseFences: services.leaseFences,
        nodes: services.store)
}

/// A setting is unusable.
public struct ConfigurationError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
