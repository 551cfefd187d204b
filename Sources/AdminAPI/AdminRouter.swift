import Foundation
import Hummingbird
import Logging
import SessionPool
import Tenancy
import Webhooks

/// What the HTTP surface needs from the rest of wahost; `App` fills it in.
public struct AdminAPIDependencies: Sendable {
    /// Tenants, tokens and OTP.
    public var tenants: TenantDirectory
    /// The sessions.
    public var pool: SessionPool
    /// Where route-level audit entries go (token failures are audited by `tenants`).
    public var audit: any AuditLogRepository
    /// Deletes a tenant's rows and credential files (after its session was stopped).
    public var deleteTenant: @Sendable (TenantName, _ actor: String, _ clientAddress: String) async throws -> Void
    /// True when the database answers.
    public var storageReachable: @Sendable () async -> Bool
    /// `sqlite` or `postgres`.
    public var backendName: String
    /// The Prometheus text exposition of every metric.
    public var metricsText: @Sendable () -> String
    /// Demo mode only: the simulated phone scans a QR string. Nil in `serve`, so the control does not exist there.
    public var demoPhone: (@Sendable (String) async throws -> Void)?
    /// Reverse proxies whose `X-Forwarded-For` names the client (for lockout and audit); empty: the socket peer counts.
    public var trustedProxies: [IPNetwork]
    /// The per-tenant event log behind `/events` (nil: the routes answer 404).
    public var eventLog: EventLogWriter?
    /// Webhook configuration and its delivery queue (nil: the routes answer 404).
    public var webhooks: WebhookSettings?
    /// Dashboard sign-ins, in the system database so every node accepts a cookie any node issued.
    public var dashboardSignIns: DashboardSignIns
    /// The operator's notifier session (`serve --otp-sender`): sends one-time codes for tenants whose own session is not connected.
    public var otpSender: TenantName?
    /// Forwarding to the node that runs a session, and checking requests forwarded here (nil: neither).
    public var forwarding: NodeForwarding?
    /// Node rows and leases for `GET /operator/nodes` (nil: the route answers 404).
    public var cluster: (any ClusterNodeRepository & SessionRecordRepository)?

    public init(
        tenants: TenantDirectory, pool: SessionPool, audit: any AuditLogRepository, dashboardSignIns: DashboardSignIns,
        deleteTenant: @escaping @Sendable (TenantName, String, String) async throws -> Void,
        storageReachable: @escaping @Sendable () async -> Bool, backendName: String, metricsText: @escaping @Sendable () -> String,
        demoPhone: (@Sendable (String) async throws -> Void)? = nil, trustedProxies: [IPNetwork] = [], eventLog: EventLogWriter? = nil,
        otpSender: TenantName? = nil, webhooks: WebhookSettings? = nil, forwarding: NodeForwarding? = nil,
        cluster: (any ClusterNodeRepository & SessionRecordRepository)? = nil
    ) {
        self.forwarding = forwarding
        self.cluster = cluster
        self.webhooks = webhooks
        self.dashboardSignIns = dashboardSignIns
        self.otpSender = otpSender
        self.eventLog = eventLog
        self.trustedProxies = trustedProxies
        self.tenants = tenants
        self.pool = pool
        self.audit = audit
        self.deleteTenant = deleteTenant
        self.storageReachable = storageReachable
        self.backendName = backendName
        self.metricsText = metricsText
        self.demoPhone = demoPhone
    }
}

/// Builds the router: tenant session endpoints (canonical and seed aliases), operator endpoints, health,
/// readiness, metrics and the OpenAPI document.
public func buildAdminRouter(_ dependencies: AdminAPIDependencies) throws -> Router<AdminRequestContext> {
    let router = Router(context: AdminRequestContext.self)
    router.middlewares.add(TrustedProxyMiddleware(trusted: dependencies.trustedProxies))
    router.middlewares.add(ForwardedRequestVerifier(key: dependencies.forwarding?.key, audit: dependencies.audit))
    router.middlewares.add(JSONErrorMiddleware())
    router.middlewares.add(MetricsMiddleware())
    HealthRoutes(dependencies: dependencies).register(on: router)
    let dashboardSessions = DashboardSessions(signIns: dependencies.dashboardSignIns)
    // The routes that act on a tenant's session answer on the node that runs it.
    let api = APISessionRouting()
    let sessionRouter = ownerRoutes(router, dependencies, bodyLimit: AdminRequestContext.maximumBody, routing: api)
    SessionRoutes(dependencies: dependencies).register(on: sessionRouter)
    EventRoutes(dependencies: dependencies).register(on: sessionRouter)
    MessageRoutes(dependencies: dependencies).register(on: ownerRoutes(router, dependencies, bodyLimit: MessageRoutes.maximumBodyBytes, routing: api))
    OneTimeCodeRoutes(dependencies: dependencies).register(on: sessionRouter)
    WebhookRoutes(dependencies: dependencies).register(on: router)
    OperatorRoutes(dependencies: dependencies, dashboardSessions: dashboardSessions).register(on: router, sessionRouter: sessionRouter)
    let dashboard = try DashboardRoutes(dependencies: dependencies, sessions: dashboardSessions)
    dashboard.register(on: router, sessionRouter: ownerRoutes(router, dependencies, bodyLimit: DashboardRoutes.maximumFormBytes, routing: dashboard))
    return router
}

/// A group whose routes are forwarded to the session's owner when another node runs it (bodies up to `bodyLimit`).
private func ownerRoutes(
    _ router: Router<AdminRequestContext>, _ dependencies: AdminAPIDependencies, bodyLimit: Int, routing: some SessionOwnerRouting
) -> RouterGroup<AdminRequestContext> {
    let group = router.group()
    if let forwarding = dependencies.forwarding {
        group.add(middleware: OwnerForwardingMiddleware(pool: dependencies.pool, forwarding: forwarding, bodyLimit: bodyLimit, routing: routing))
    }
    return group
}
