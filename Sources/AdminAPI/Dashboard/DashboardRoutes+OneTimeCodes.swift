import Foundation
import Hummingbird
import Tenancy

/// "Send me a code on WhatsApp" beside the authenticator field: on the sign-in page (token checked first) and in the
/// signed-in tenant's logout dialog.
extension DashboardRoutes {
    /// From the sign-in form: checks the tenant's token, sends a code, shows the sign-in page again with the tenant filled in.
    func sendSignInCode(_ request: Request, _ context: AdminRequestContext) async throws -> Response {
        try checkOrigin(request)
        let form = try await decodeForm(SignInForm.self, request, context)
        var values = base(nil, title: "Sign in", page: "signin")
        values["tenant"] = form.tenant
        guard let text = form.tenant, let name = try? TenantName(text) else {
            values["error"] = "Enter the tenant name and its admin token, then ask for a code."
            return try page("signin", values, status: .badRequest)
        }
        let tenant: TenantName
        do { tenant = try await dependencies.tenants.authenticateTenant(token: form.token, clientAddress: context.clientAddress) } catch {
            values["error"] = Self.message(for: error)
            return try page("signin", values, status: APIError.from(error).status)
        }
        guard tenant == name else {
            values["error"] = "This admin token does not belong to tenant \(name)."
            return try page("signin", values, status: .forbidden)
        }
        let caller = ActionCaller(actor: "tenant:\(tenant)", clientAddress: context.clientAddress, channel: "dashboard", logger: context.logger)
        do {
            let sent = try await SessionActions(dependencies: dependencies).sendWhatsAppCode(tenant, by: caller)
            values["notice"] = Self.codeSentNotice(sent.sentTo, sent.expiresIn) + " Enter your admin token again with the code."
        } catch {
            values["error"] = "No code sent: \(error.message)"
            return try page("signin", values, status: error.status)
        }
        return try page("signin", values)
    }

    /// From the logout dialog of a signed-in tenant: sends a code and shows the tenant page with where it went.
    func sendTenantCode(_ request: Request, _ context: AdminRequestContext) async throws -> Response {
        let (session, form) = try await requireSession(request, context, form: TenantForm.self)
        let tenant = try await tenantFor(session, form.tenant)
        let sent: (sentTo: String, expiresIn: Int)
        do { sent = try await SessionActions(dependencies: dependencies).sendWhatsAppCode(tenant.name, by: caller(session, context)) } catch {
            return try await renderTenant(tenant, session, error: "No code sent: \(error.message)", status: error.status)
        }
        return try await renderTenant(tenant, session, notice: Self.codeSentNotice(sent.sentTo, sent.expiresIn))
    }

    static func codeSentNotice(_ sentTo: String, _ expiresIn: Int) -> String {
        "A one-time code was sent on WhatsApp to \(sentTo); it works for \(max(1, expiresIn / 60)) minutes."
    }
}
