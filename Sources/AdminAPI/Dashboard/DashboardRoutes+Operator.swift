import Foundation
import HTTPTypes
import Hummingbird
import SessionPool
import Tenancy

/// The operator's page: every tenant with its session and webhook state; restart and create.
extension DashboardRoutes {
    /// The tenants page, with what the last action created or the error it met.
    func operatorPage(
        _ request: Request, _ context: AdminRequestContext, created: [String: Any]?, error: String? = nil, notice: String? = nil,
        status httpStatus: HTTPResponse.Status = .ok
    ) async throws -> Response {
        guard let session = try await currentSession(request) else { return redirect("/dashboard/") }
        guard session.principal == .operator else { return redirect("/dashboard/tenant") }
        var values = base(session, title: "Tenants", page: "operator")
        values["error"] = error
        values["notice"] = notice
        values["created"] = created
        let tenants: [Tenant]
        do { tenants = try await dependencies.tenants.listTenants() } catch { throw APIError.from(error) }
        let webhooks = try await webhookHealth()
        var rows: [[String: Any]] = []
        for tenant in tenants {
            let status = await dependencies.pool.status(of: tenant.name)
            let row: [String: Any] = [
                "name": tenant.name.rawValue, "state": Self.label(status.state), "owner": status.ownerNode ?? "—",
                "heartbeat": status.lastHeartbeat?.iso8601 ?? "—", "lastError": status.lastError ?? "", "csrf": session.csrfToken,
            ]
            rows.append(row.merging(Self.webhookCell(webhooks[tenant.name], now: Date())) { first, _ in first })
        }
        let failing = rows.filter { $0["webhookFailing"] != nil }.count
        values["failingWebhooks"] = failing == 0 ? nil : "\(failing) tenant\(failing == 1 ? "" : "s") with failing webhooks"
        values["hasTenants"] = rows.isEmpty ? nil : true
        values["tenants"] = rows
        return try page("operator", values, status: httpStatus)
    }

    /// Restarts one tenant's session from the tenants page.
    func operatorRestart(_ request: Request, _ context: AdminRequestContext) async throws -> Response {
        let (session, form) = try await requireSession(request, context, form: TenantForm.self)
        guard session.principal == .operator else { throw APIError(.forbidden, "operator_only", "operator sign-in required") }
        let tenant = try await tenantFor(session, form.tenant)
        do {
            try await actions.restart(tenant.name, by: caller(session, context))
        } catch {
            return try await operatorPage(request, context, created: nil, error: "Restart of \(tenant.name) failed: \(error.message)")
        }
        return try await operatorPage(request, context, created: nil, notice: "Restarting \(tenant.name).")
    }

    /// Creates a tenant from the tenants page and shows its token (and TOTP secret) once.
    func operatorCreate(_ request: Request, _ context: AdminRequestContext) async throws -> Response {
        let (session, form) = try await requireSession(request, context, form: CreateTenantForm.self)
        guard session.principal == .operator else { throw APIError(.forbidden, "operator_only", "operator sign-in required") }
        guard let text = form.name, let name = try? TenantName(text) else {
            return try await operatorPage(request, context, created: nil, error: "Names are 1 to 64 of a-z, 0-9 and '-'.")
        }
        do {
            let issued = try await dependencies.tenants.createTenant(
                name, mfa: form.mfa == "yes", actor: "operator", clientAddress: context.clientAddress)
            var created: [String: Any] = ["name": name.rawValue, "token": issued.adminToken.text]
            created["otpSecret"] = issued.otp?.secretBase32
            created["otpQRSVG"] = issued.otp.flatMap { QRCodeSVG.render($0.provisioningURI, pixels: 200) }
            return try await operatorPage(request, context, created: created)
        } catch {
            return try await operatorPage(request, context, created: nil, error: APIError.from(error).message)
        }
    }
}
