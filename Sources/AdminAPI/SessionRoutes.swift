import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import SessionPool
import Tenancy
import WahostBasics

/// The per-tenant `/session` endpoints: canonical `/tenants/{tenant}/session/…` and the seed's `/session/…` aliases.
struct SessionRoutes {
    let dependencies: AdminAPIDependencies

    /// The status body (written directly: the most requested endpoint); anonymous callers get `connected` and `state` only.
    struct Status: ResponseGenerator {
        let tenant: String
        let connected: Bool
        let state: String
        let loggedIn: Bool
        let me: String?
        let pairingMethod: String?
        let lastError: String?
        /// True when the caller proved the tenant's token: then the account and the last error are shown.
        let authenticated: Bool

        func response(from request: Request, context: some RequestContext) throws -> Response {
            guard authenticated else { return JSONBody.object(["connected": .bool(connected), "state": .string(state)]).response() }
            // `me`, `pairing_method` and `last_error` are explicit nulls when unknown, as the contract shows.
            return JSONBody.object([
                "tenant": .string(tenant), "connected": .bool(connected), "state": .string(state), "logged_in": .bool(loggedIn),
                "me": .string(me), "pairing_method": .string(pairingMethod), "last_error": .string(lastError),
            ]).response()
        }
    }

    struct QR: ResponseEncodable {
        let qr: String
        let expiresIn: Int
        enum CodingKeys: String, CodingKey {
            case qr
            case expiresIn = "expires_in"
        }
    }

    struct PairingCode: ResponseEncodable {
        let code: String
        let expiresIn: Int
        enum CodingKeys: String, CodingKey {
            case code
            case expiresIn = "expires_in"
        }
    }

    /// The group list body (written directly, like `status`).
    struct Groups: ResponseGenerator {
        let groups: [SessionGroup]

        func response(from request: Request, context: some RequestContext) throws -> Response {
            JSONBody.array(groups.map { ["id": .string($0.id), "subject": .string($0.subject), "participants": .int($0.participants.count)] })
                .response()
        }
    }

    struct LogoutResult: ResponseEncodable {
        let status: String
        let message: String
    }

    /// `{"number": "910000000000"}`; a JSON number is accepted too.
    struct PairingCodeRequest: Decodable {
        let number: String?

        enum CodingKeys: String, CodingKey { case number }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            if let text = try? container.decodeIfPresent(String.self, forKey: .number) {
                number = text
            } else if let value = try? container.decodeIfPresent(UInt64.self, forKey: .number) {
                number = String(value)
            } else if container.contains(.number), try container.decodeNil(forKey: .number) {
                number = nil
            } else if container.contains(.number) {
                throw APIError.badRequest("number_invalid", "number must be a string of digits")
            } else {
                number = nil
            }
        }
    }

    /// Each endpoint twice: the canonical path names the tenant, the seed's alias takes it from the token (or `x-tenant`).
    func register(on router: some RouterMethods<AdminRequestContext>) {
        router.get("tenants/:tenant/session/status") { request, context in try await status(request, context, fromPath: true) }
        router.get("session/status") { request, context in try await status(request, context, fromPath: false) }
        router.get("tenants/:tenant/session/qr") { request, context in try await qr(request, context, fromPath: true) }
        router.get("session/qr") { request, context in try await qr(request, context, fromPath: false) }
        router.post("tenants/:tenant/session/pairing-code") { request, context in try await pairingCode(request, context, fromPath: true) }
        router.post("session/pairing-code") { request, context in try await pairingCode(request, context, fromPath: false) }
        router.get("tenants/:tenant/session/groups") { request, context in try await groups(request, context, fromPath: true) }
        router.get("session/groups") { request, context in try await groups(request, context, fromPath: false) }
        router.post("tenants/:tenant/session/logout") { request, context in try await logout(request, context, fromPath: true) }
        router.post("session/logout") { request, context in try await logout(request, context, fromPath: false) }
    }

    private var actions: SessionActions { SessionActions(dependencies: dependencies) }

    // MARK: Handlers

    private func status(_ request: Request, _ context: AdminRequestContext, fromPath: Bool) async throws -> Status {
        let authenticated = request.headers[.adminToken] != nil
        let tenant =
            authenticated
            ? try await statusCaller(request, context, fromPath: fromPath) : try await statusTenant(request, context, fromPath: fromPath)
        let status = await dependencies.pool.status(of: tenant)
        return Status(
            tenant: tenant.rawValue, connected: status.connected, state: status.state.rawValue, loggedIn: status.me != nil,
            me: status.me, pairingMethod: status.pairingMethod?.rawValue, lastError: status.lastError, authenticated: authenticated)
    }

    private func qr(_ request: Request, _ context: AdminRequestContext, fromPath: Bool) async throws -> QR {
        let tenant = try await authorize(request, context, fromPath: fromPath, otp: true)
        let grant = try await actions.qrCode(tenant, by: .api("tenant:\(tenant)", context))
        return QR(qr: grant.qr, expiresIn: grant.expiresIn)
    }

    private func pairingCode(_ request: Request, _ context: AdminRequestContext, fromPath: Bool) async throws -> PairingCode {
        let tenant = try await authorize(request, context, fromPath: fromPath, otp: false)
        let body = try await request.decodeJSON(as: PairingCodeRequest.self, context: context, example: #"{"number": "910000000000"}"#)
        // The number is checked before the OTP, so a typo does not use up a one-time code.
        _ = try SessionActions.phoneNumber(body.number)
        try await verifyOTP(tenant, request, context)
        let grant = try await actions.pairingCode(tenant, number: body.number ?? "", by: .api("tenant:\(tenant)", context))
        return PairingCode(code: grant.code, expiresIn: grant.expiresIn)
    }

    private func groups(_ request: Request, _ context: AdminRequestContext, fromPath: Bool) async throws -> Groups {
        Groups(groups: try await actions.groups(try await authorize(request, context, fromPath: fromPath, otp: false)))
    }

    private func logout(_ request: Request, _ context: AdminRequestContext, fromPath: Bool) async throws -> LogoutResult {
        let tenant = try await authorize(request, context, fromPath: fromPath, otp: true)
        try await actions.logout(tenant, by: .api("tenant:\(tenant)", context))
        return LogoutResult(status: "success", message: "Session cleared.")
    }

    // MARK: Tenant resolution and authorization

    /// The tenant whose status is asked for: from the path, else `x-tenant`, else the only tenant.
    private func statusTenant(_ request: Request, _ context: AdminRequestContext, fromPath: Bool) async throws -> TenantName {
        let name: TenantName
        if fromPath {
            name = try pathTenant(context)
        } else if let header = request.headers[.tenant] {
            guard let parsed = try? TenantName(header) else { throw APIError.unknownTenant }
            name = parsed
        } else {
            let only: TenantName?
            do { only = try await dependencies.tenants.onlyTenant() } catch { throw APIError.from(error) }
            guard let only else {
                throw APIError.badRequest("tenant_required", "name the tenant with the x-tenant header (or use /tenants/{tenant}/session/status)")
            }
            return only
        }
        let exists: Bool
        do { exists = try await dependencies.tenants.exists(name) } catch { throw APIError.from(error) }
        guard exists else { throw APIError.unknownTenant }
        return name
    }

    /// The tenant whose full status a token holder asks for: the token's tenant, which must match the path or `x-tenant`.
    private func statusCaller(_ request: Request, _ context: AdminRequestContext, fromPath: Bool) async throws -> TenantName {
        let tenant = try await authorize(request, context, fromPath: fromPath, otp: false)
        if !fromPath, let header = request.headers[.tenant], header != tenant.rawValue {
            await audit("auth.token_wrong_tenant", tenant: try? TenantName(header), context, actor: "tenant:\(tenant)")
            throw APIError.wrongTenant
        }
        return tenant
    }

    /// Verifies `x-admin-token` (and `x-otp` when asked); on canonical paths the token must name the path's tenant.
    func authorize(_ request: Request, _ context: AdminRequestContext, fromPath: Bool, otp: Bool) async throws -> TenantName {
        let pathName = fromPath ? try? pathTenant(context) : nil
        let tenant: TenantName
        do {
            tenant = try await dependencies.tenants.authenticateTenant(token: request.headers[.adminToken], clientAddress: context.clientAddress)
        } catch {
            throw APIError.from(error)
        }
        if fromPath, pathName != tenant {
            await audit("auth.token_wrong_tenant", tenant: pathName, context, actor: "tenant:\(tenant)")
            throw APIError.wrongTenant
        }
        if otp { try await verifyOTP(tenant, request, context) }
        return tenant
    }

    private func verifyOTP(_ tenant: TenantName, _ request: Request, _ context: AdminRequestContext) async throws {
        do {
            try await dependencies.tenants.verifyOTP(for: tenant, code: request.headers[.otp], clientAddress: context.clientAddress)
        } catch {
            throw APIError.from(error)
        }
    }

    private func pathTenant(_ context: AdminRequestContext) throws -> TenantName {
        guard let text = context.parameters.get("tenant"), let name = try? TenantName(text) else { throw APIError.unknownTenant }
        return name
    }

    private func audit(_ action: String, tenant: TenantName?, _ context: AdminRequestContext, actor: String? = nil) async {
        await actions.audit(action, tenant: tenant, by: .api(actor ?? tenant.map { "tenant:\($0)" } ?? "anonymous", context))
    }
}

extension HTTPField.Name {
    /// `x-admin-token`: a tenant's or the operator's token.
    static let adminToken = HTTPField.Name("x-admin-token")!
    /// `x-otp`: a TOTP code for MFA tenants.
    static let otp = HTTPField.Name("x-otp")!
    /// `x-tenant`: names the tenant on `/session/status`.
    static let tenant = HTTPField.Name("x-tenant")!
}
