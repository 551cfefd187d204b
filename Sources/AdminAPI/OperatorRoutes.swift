import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import SessionPool
import Tenancy
import WahostBasics

/// Operator endpoints (operator token in `x-admin-token`): list, create, change and delete tenants, rotate tokens,
/// reset OTP, restart sessions.
struct OperatorRoutes {
    let dependencies: AdminAPIDependencies
    /// Dashboard sign-ins, ended on every node when their tenant's credentials change here.
    let dashboardSessions: DashboardSessions

    struct TenantSummary: ResponseEncodable {
        let tenant: String
        let mfa: Bool
        let mfaNumber: String?
        let createdAt: String
        let state: String
        let connected: Bool
        let me: String?
        let ownerNode: String?
        let lastHeartbeat: String?
        let lastError: String?

        enum CodingKeys: String, CodingKey {
            case tenant, mfa, state, connected, me
            case createdAt = "created_at"
            case mfaNumber = "mfa_number"
            case ownerNode = "owner_node"
            case lastHeartbeat = "last_heartbeat"
            case lastError = "last_error"
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(tenant, forKey: .tenant)
            try container.encode(mfa, forKey: .mfa)
            try container.encode(mfaNumber, forKey: .mfaNumber)
            try container.encode(createdAt, forKey: .createdAt)
            try container.encode(state, forKey: .state)
            try container.encode(connected, forKey: .connected)
            try container.encode(me, forKey: .me)
            try container.encode(ownerNode, forKey: .ownerNode)
            try container.encode(lastHeartbeat, forKey: .lastHeartbeat)
            try container.encode(lastError, forKey: .lastError)
        }
    }

    struct CreateTenantRequest: Decodable {
        let name: String?
        let mfa: Bool?
        let mfaNumber: String?
        enum CodingKeys: String, CodingKey {
            case name, mfa
            case mfaNumber = "mfa_number"
        }
    }

    /// `{"mfa_number": "15551234567"}`; null clears it. The only field that can change today.
    struct UpdateTenantRequest: Decodable {
        /// Nil when the field is absent; `.some(nil)` when it is null.
        let mfaNumber: String??
        enum CodingKeys: String, CodingKey { case mfaNumber = "mfa_number" }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            if !container.contains(.mfaNumber) {
                mfaNumber = nil
            } else if try container.decodeNil(forKey: .mfaNumber) {
                mfaNumber = .some(nil)
            } else if let text = try? container.decode(String.self, forKey: .mfaNumber) {
                mfaNumber = .some(text)
            } else {
                throw APIError.badRequest("invalid_mfa_number", "mfa_number must be a string of digits or null")
            }
        }
    }

    struct CreatedTenant: ResponseEncodable {
        let tenant: String
        let adminToken: String
        let otpSecret: String?
        let otpauthURI: String?

        enum CodingKeys: String, CodingKey {
            case tenant
            case adminToken = "admin_token"
            case otpSecret = "otp_secret"
            case otpauthURI = "otpauth_uri"
        }
    }

    struct RotatedToken: ResponseEncodable {
        let tenant: String
        let adminToken: String
        enum CodingKeys: String, CodingKey {
            case tenant
            case adminToken = "admin_token"
        }
    }

    struct OTPReset: ResponseEncodable {
        let tenant: String
        let otpSecret: String
        let otpauthURI: String
        enum CodingKeys: String, CodingKey {
            case tenant
            case otpSecret = "otp_secret"
            case otpauthURI = "otpauth_uri"
        }
    }

    struct Done: ResponseEncodable {
        let status: String
        let message: String
    }

    /// Registers the routes; `restart` goes on `sessionRouter`, which forwards it to the session's owner.
    func register(on router: Router<AdminRequestContext>, sessionRouter: some RouterMethods<AdminRequestContext>) {
        router.get("tenants") { request, context -> [TenantSummary] in
            try await authorize(request, context)
            let tenants: [Tenant]
            do { tenants = try await dependencies.tenants.listTenants() } catch { throw APIError.from(error) }
            var summaries: [TenantSummary] = []
            summaries.reserveCapacity(tenants.count)
            for tenant in tenants { summaries.append(await summary(tenant)) }
            return summaries
        }
        router.post("tenants") { request, context -> EditedResponse<CreatedTenant> in
            try await authorize(request, context)
            let body = try await request.decodeJSON(as: CreateTenantRequest.self, context: context, example: #"{"name": "acme", "mfa": true}"#)
            guard let rawName = body.name else { throw APIError.badRequest("name_required", "name is required") }
            let name: TenantName
            do { name = try TenantName(rawName) } catch {
                throw APIError(.unprocessableContent, "name_invalid", "\(error)")
            }
            let issued: IssuedTenant
            do {
                issued = try await dependencies.tenants.createTenant(
                    name, mfa: body.mfa ?? true, mfaNumber: body.mfaNumber, actor: "operator", clientAddress: context.clientAddress)
            } catch {
                throw APIError.from(error)
            }
            return EditedResponse(
                status: .created,
                response: CreatedTenant(
                    tenant: name.rawValue, adminToken: issued.adminToken.text, otpSecret: issued.otp?.secretBase32,
                    otpauthURI: issued.otp?.provisioningURI))
        }
        router.get("tenants/:tenant") { request, context -> TenantSummary in
            try await authorize(request, context)
            return await summary(try await existingTenant(context))
        }
        router.patch("tenants/:tenant") { request, context -> TenantSummary in
            try await authorize(request, context)
            let body = try await request.decodeJSON(as: UpdateTenantRequest.self, context: context, example: #"{"mfa_number": "15551234567"}"#)
            var tenant = try await existingTenant(context)
            guard let number = body.mfaNumber else { throw APIError.badRequest("nothing_to_change", "send mfa_number (digits, or null to clear)") }
            do {
                tenant.mfaNumber = try await dependencies.tenants.setMFANumber(
                    number, for: tenant.name, actor: "operator", clientAddress: context.clientAddress)
            } catch {
                throw APIError.from(error)
            }
            return await summary(tenant)
        }
        router.delete("tenants/:tenant") { request, context -> Done in
            try await authorize(request, context)
            let tenant = try await existingTenant(context)
            await dependencies.pool.remove(tenant.name)
            await dashboardSessions.end(principal: .tenant(tenant.name))
            do { try await dependencies.deleteTenant(tenant.name, "operator", context.clientAddress) } catch let error as TenancyError {
                throw APIError.from(error)
            } catch {
                context.logger.error("tenant credential wipe failed", metadata: ["tenant": "\(tenant.name)", "error": "\(error)"])
                throw APIError(.serviceUnavailable, "unavailable", "the tenant's credential files could not be deleted; see the server log")
            }
            return Done(status: "success", message: "Tenant deleted.")
        }
        router.post("tenants/:tenant/rotate-token") { request, context -> RotatedToken in
            try await authorize(request, context)
            let tenant = try await existingTenant(context)
            do {
                let token = try await dependencies.tenants.rotateAdminToken(
                    for: tenant.name, actor: "operator", clientAddress: context.clientAddress)
                await dashboardSessions.end(principal: .tenant(tenant.name))
                return RotatedToken(tenant: tenant.name.rawValue, adminToken: token.text)
            } catch {
                throw APIError.from(error)
            }
        }
        router.post("tenants/:tenant/reset-otp") { request, context -> OTPReset in
            try await authorize(request, context)
            let tenant = try await existingTenant(context)
            do {
                let enrolment = try await dependencies.tenants.resetOTP(for: tenant.name, actor: "operator", clientAddress: context.clientAddress)
                await dashboardSessions.end(principal: .tenant(tenant.name))
                return OTPReset(tenant: tenant.name.rawValue, otpSecret: enrolment.secretBase32, otpauthURI: enrolment.provisioningURI)
            } catch {
                throw APIError.from(error)
            }
        }
        router.get("operator/nodes") { request, context -> Response in
            try await authorize(request, context)
            return try await nodes()
        }
        router.post("operator/nodes/:node/drain") { request, context -> Response in
            try await authorize(request, context)
            return try await setDrain(true, context)
        }
        router.delete("operator/nodes/:node/drain") { request, context -> Response in
            try await authorize(request, context)
            return try await setDrain(false, context)
        }
        sessionRouter.post("tenants/:tenant/session/restart") { request, context -> TenantSummary in
            try await authorize(request, context)
            let tenant = try await existingTenant(context)
            try await SessionActions(dependencies: dependencies).restart(tenant.name, by: .api("operator", context))
            return await summary(tenant)
        }
    }

    private func authorize(_ request: Request, _ context: AdminRequestContext) async throws {
        do {
            try await dependencies.tenants.authenticateOperator(token: request.headers[.adminToken], clientAddress: context.clientAddress)
        } catch {
            throw APIError.from(error)
        }
    }

    /// Records (or cancels) a drain request for the node named in the path; the node acts on it at its next heartbeat.
    private func setDrain(_ requested: Bool, _ context: AdminRequestContext) async throws -> Response {
        guard let cluster = dependencies.cluster else { throw APIError(.notFound, "not_found", "no node records in this process") }
        let node = context.parameters.get("node") ?? ""
        let found: Bool
        do { found = try await cluster.setDrainRequested(requested, for: node, at: Date()) } catch {
            throw APIError.storageUnavailable()
        }
        guard found else { throw APIError(.notFound, "node_not_found", "no node with this id has a row") }
        await SessionActions(dependencies: dependencies).audit(
            requested ? "node.drain" : "node.undrain", tenant: nil, by: .api("operator", context), detail: "node \(node)")
        return JSONBody.object(["node": .string(node), "draining": .bool(requested)]).response(status: requested ? .accepted : .ok)
    }

    /// `{"nodes": […]}`: each node row, live while its heartbeat is younger than the lease TTL, with its unexpired leases.
    private func nodes() async throws -> Response {
        guard let cluster = dependencies.cluster else { throw APIError(.notFound, "not_found", "no node records in this process") }
        let rows: [ClusterNode]
        let leases: [SessionLease]
        do {
            rows = try await cluster.clusterNodes()
            leases = try await cluster.leases()
        } catch {
            throw APIError.storageUnavailable()
        }
        let now = Date()
        let held = Dictionary(grouping: leases.filter { $0.expiresAt > now }, by: \.nodeID).mapValues(\.count)
        let ttl = dependencies.pool.leaseTTL.timeInterval
        let nodes = JSONText.array(
            rows.map { row in
                [
                    "id": .string(row.nodeID), "advertise_url": .string(row.advertiseURL), "started_at": .string(row.startedAt.iso8601),
                    "last_heartbeat": .string(row.lastBeatAt.iso8601), "live": .bool(now.timeIntervalSince(row.lastBeatAt) < ttl),
                    "sessions": .int(held[row.nodeID] ?? 0), "draining": .bool(row.drainRequested),
                ]
            })
        return JSONBody(string: #"{"nodes":"# + nodes + "}").response()
    }

    private func existingTenant(_ context: AdminRequestContext) async throws -> Tenant {
        guard let text = context.parameters.get("tenant"), let name = try? TenantName(text) else { throw APIError.unknownTenant }
        let tenant: Tenant?
        do { tenant = try await dependencies.tenants.tenant(named: name) } catch { throw APIError.from(error) }
        guard let tenant else { throw APIError.unknownTenant }
        return tenant
    }

    private func summary(_ tenant: Tenant) async -> TenantSummary {
        let status = await dependencies.pool.status(of: tenant.name)
        return TenantSummary(
            tenant: tenant.name.rawValue, mfa: tenant.mfaEnabled, mfaNumber: tenant.mfaNumber, createdAt: tenant.createdAt.iso8601,
            state: status.state.rawValue,
            connected: status.connected, me: status.me, ownerNode: status.ownerNode, lastHeartbeat: status.lastHeartbeat?.iso8601,
            lastError: status.lastError)
    }
}

extension Date {
    /// ISO 8601 with fractional seconds, UTC.
    var iso8601: String { formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted)) }
}
