import Foundation
import Hummingbird
import Tenancy

/// `POST /tenants/{tenant}/otp` (and the alias `/session/otp`): a one-time code sent on WhatsApp, accepted in `x-otp`
/// wherever a TOTP code is; `x-admin-token` only, since the caller has no code yet.
struct OneTimeCodeRoutes {
    let dependencies: AdminAPIDependencies

    struct Sent: ResponseEncodable {
        let sentTo: String
        let expiresIn: Int
        enum CodingKeys: String, CodingKey {
            case sentTo = "sent_to"
            case expiresIn = "expires_in"
        }
    }

    func register(on router: some RouterMethods<AdminRequestContext>) {
        router.post("tenants/:tenant/otp") { request, context in try await send(request, context, fromPath: true) }
        router.post("session/otp") { request, context in try await send(request, context, fromPath: false) }
    }

    private func send(_ request: Request, _ context: AdminRequestContext, fromPath: Bool) async throws -> EditedResponse<Sent> {
        let tenant = try await SessionRoutes(dependencies: dependencies).authorize(request, context, fromPath: fromPath, otp: false)
        let sent = try await SessionActions(dependencies: dependencies).sendWhatsAppCode(tenant, by: .api("tenant:\(tenant)", context))
        return EditedResponse(status: .accepted, response: Sent(sentTo: sent.sentTo, expiresIn: sent.expiresIn))
    }
}
