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

    func register(on router: Router<AdminRequestContext>) {
        let canonical = router.group("tenants/:tenant/session")
        let alias = router.group("session")
        for (group, fromPath) in [(canonical, true), (alias, false)] {
            group.get("status") { request, context in
                if request.headers[.adminToken] != nil {
                    return try await status(try await statusCaller(request, context, fromPath: fromPath), authenticated: true)
                }
                return try await status(try await statusTenant(request, context, fromPath: fromPath), authenticated: false)
            }
            group.get("qr") { request, context in
                try await qr(try await authorize(request, context, fromPath: fromPath, otp: true), context)
            }
            group.post("pairing-code") { request, context in
                let tenant = try await authorize(request, context, fromPath: fromPath, otp: false)
                let number = try await phoneNumber(request, context)
                try await verifyOTP(tenant, request, context)
                return try await pairingCode(tenant, number: number, context)
            }
            group.get("groups") { request, context in
                try await groups(try await authorize(request, context, fromPath: fromPath, otp: false))
            }
            group.post("logout") { request, context in
                try await logout(try await authorize(request, context, fromPath: fromPath, otp: true), context)
            }
        }
    }

    // MARK: Handlers

    private func status(_ tenant: TenantName, authenticated: Bool) async throws -> Status {
        let status = await dependencies.pool.status(of: tenant)
        return Status(
            tenant: tenant.rawValue, connected: status.connected, state: status.state.rawValue, loggedIn: status.me != nil,
            me: status.me, pairingMethod: status.pairingMethod?.rawValue, lastError: status.lastError, authenticated: authenticated)
    }

    private func qr(_ tenant: TenantName, _ context: AdminRequestContext) async throws -> QR {
        let status: SessionStatus
        do { status = try await dependencies.pool.qrCode(for: tenant) } catch { throw APIError.from(error) }
        await audit("pairing.qr", tenant: tenant, context)
        let remaining = status.qrExpiresAt.map { max(0, Int($0.timeIntervalSinceNow.rounded(.down))) } ?? 0
        return QR(qr: status.qr ?? "", expiresIn: remaining)
    }

    private func pairingCode(_ tenant: TenantName, number: String, _ context: AdminRequestContext) async throws -> PairingCode {
        let code: String
        do { code = try await dependencies.pool.pairingCode(for: tenant, phoneNumber: number) } catch { throw APIError.from(error) }
        await audit("pairing.code", tenant: tenant, context)
        let status = await dependencies.pool.status(of: tenant)
        let remaining = status.qrExpiresAt.map { max(0, Int($0.timeIntervalSinceNow.rounded(.down))) } ?? 0
        return PairingCode(code: code, expiresIn: remaining)
    }

    private func groups(_ tenant: TenantName) async throws -> Groups {
        do {
            return Groups(groups: try await dependencies.pool.groups(for: tenant))
        } catch {
            throw APIError.from(error)
        }
    }

    private func logout(_ tenant: TenantName, _ context: AdminRequestContext) async throws -> LogoutResult {
        do { try await dependencies.pool.logout(tenant) } catch { throw APIError.from(error) }
        await audit("session.logout", tenant: tenant, context)
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
    private func authorize(_ request: Request, _ context: AdminRequestContext, fromPath: Bool, otp: Bool) async throws -> TenantName {
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

    private func phoneNumber(_ request: Request, _ context: AdminRequestContext) async throws -> String {
        let body = try await request.decodeJSON(as: PairingCodeRequest.self, context: context, example: #"{"number": "910000000000"}"#)
        guard let number = body.number, !number.isEmpty else { throw APIError.badRequest("number_required", "number is required") }
        do { return try PhoneNumber(number, allowingSeparators: false).digits } catch {
            throw APIError.badRequest("number_invalid", "number must be 7 to 15 digits, country code first, no + or spaces: \(error)")
        }
    }

    private func audit(_ action: String, tenant: TenantName?, _ context: AdminRequestContext, actor: String? = nil) async {
        let event = AuditEvent(
            at: Date(), actor: actor ?? tenant.map { "tenant:\($0)" } ?? "anonymous", action: action, tenant: tenant?.rawValue,
            clientAddress: context.clientAddress, detail: nil)
        do { try await dependencies.audit.appendAudit(event) } catch {
            context.logger.error("audit log write failed", metadata: ["action": "\(action)", "error": "\(error)"])
        }
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
