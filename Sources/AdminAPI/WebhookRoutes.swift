import Foundation
import HTTPTypes
import Hummingbird
import Tenancy
import WahostBasics
import Webhooks

/// `/tenants/{tenant}/webhook…` (aliases under `/session/webhook…`): configure the tenant's webhook (`x-otp` for MFA
/// tenants: a webhook receives every message), list its deliveries, re-queue a dead one, replay the log.
struct WebhookRoutes {
    let dependencies: AdminAPIDependencies

    struct PutRequest: Decodable {
        let url: String?
        let events: [String]?
    }

    func register(on router: Router<AdminRequestContext>) {
        for (prefix, fromPath) in [("tenants/:tenant/webhook", true), ("session/webhook", false)] {
            router.put(RouterPath(prefix)) { request, context in try await put(request, context, fromPath: fromPath) }
            router.get(RouterPath(prefix)) { request, context in try await get(request, context, fromPath: fromPath) }
            router.delete(RouterPath(prefix)) { request, context in try await delete(request, context, fromPath: fromPath) }
            router.post(RouterPath(prefix + "/rotate-secret")) { request, context in try await rotate(request, context, fromPath: fromPath) }
            router.get(RouterPath(prefix + "/deliveries")) { request, context in try await deliveries(request, context, fromPath: fromPath) }
            router.post(RouterPath(prefix + "/deliveries/:id/retry")) { request, context in try await retry(request, context, fromPath: fromPath) }
            router.post(RouterPath(prefix + "/redeliver")) { request, context in try await redeliver(request, context, fromPath: fromPath) }
        }
    }

    /// The webhook settings; without them (a router built without webhooks) the routes answer 404.
    private var settings: WebhookSettings {
        get throws {
            guard let settings = dependencies.webhooks else { throw APIError(.notFound, "not_found", "no such route") }
            return settings
        }
    }

    private func tenant(_ request: Request, _ context: AdminRequestContext, fromPath: Bool, otp: Bool) async throws -> TenantName {
        try await SessionRoutes(dependencies: dependencies).authorize(request, context, fromPath: fromPath, otp: otp)
    }

    private func put(_ request: Request, _ context: AdminRequestContext, fromPath: Bool) async throws -> Response {
        let tenant = try await tenant(request, context, fromPath: fromPath, otp: true)
        let body = try await request.decodeJSON(
            as: PutRequest.self, context: context, example: #"{"url": "https://example.com/hook", "events": ["message", "receipt", "session"]}"#)
        guard let url = body.url else { throw APIError.badRequest("webhook_url_invalid", "url is required") }
        let view: WebhookView
        do { view = try await settings.put(for: tenant, url: url, events: body.events) } catch let error as WebhookSettingsError {
            throw Self.apiError(error)
        }
        await SessionActions(dependencies: dependencies).audit(
            view.secret == nil ? "webhook.update" : "webhook.create", tenant: tenant, by: .api("tenant:\(tenant)", context))
        return Self.body(view).response()
    }

    private func get(_ request: Request, _ context: AdminRequestContext, fromPath: Bool) async throws -> Response {
        let tenant = try await tenant(request, context, fromPath: fromPath, otp: false)
        let view: WebhookView?
        do { view = try await settings.get(for: tenant) } catch let error as WebhookSettingsError { throw Self.apiError(error) }
        guard let view else { throw Self.notFound }
        return Self.body(view).response()
    }

    private func delete(_ request: Request, _ context: AdminRequestContext, fromPath: Bool) async throws -> Response {
        let tenant = try await tenant(request, context, fromPath: fromPath, otp: true)
        let deleted: Bool
        do { deleted = try await settings.delete(for: tenant) } catch let error as WebhookSettingsError { throw Self.apiError(error) }
        guard deleted else { throw Self.notFound }
        await SessionActions(dependencies: dependencies).audit("webhook.delete", tenant: tenant, by: .api("tenant:\(tenant)", context))
        return JSONBody.object(["status": .string("success"), "message": .string("Webhook deleted.")]).response()
    }

    private func rotate(_ request: Request, _ context: AdminRequestContext, fromPath: Bool) async throws -> Response {
        let tenant = try await tenant(request, context, fromPath: fromPath, otp: true)
        let secret: String?
        do { secret = try await settings.rotateSecret(for: tenant) } catch let error as WebhookSettingsError { throw Self.apiError(error) }
        guard let secret else { throw Self.notFound }
        await SessionActions(dependencies: dependencies).audit("webhook.rotate_secret", tenant: tenant, by: .api("tenant:\(tenant)", context))
        return JSONBody.object(["secret": .string(secret)]).response()
    }

    private func deliveries(_ request: Request, _ context: AdminRequestContext, fromPath: Bool) async throws -> Response {
        let tenant = try await tenant(request, context, fromPath: fromPath, otp: false)
        let status = request.uri.queryParameters.get("status") ?? "pending"
        guard ["pending", "failed", "dead"].contains(status) else {
            throw APIError.badRequest("invalid_status", "status must be pending, failed or dead")
        }
        let list: [WebhookDeliveryView]?
        do { list = try await settings.deliveries(for: tenant, status: status) } catch let error as WebhookSettingsError { throw Self.apiError(error) }
        guard let list else { throw Self.notFound }
        let items = JSONText.array(
            list.map { delivery in
                [
                    "id": .int(Int(delivery.id)), "type": .string(delivery.type), "status": .string(delivery.status),
                    "attempts": .int(delivery.attempts), "last_error": .string(delivery.lastError),
                    "next_attempt_at": .string(delivery.nextAttemptAt.map { $0.iso8601 }),
                ]
            })
        return JSONBody(string: #"{"deliveries":"# + items + "}").response()
    }

    private func retry(_ request: Request, _ context: AdminRequestContext, fromPath: Bool) async throws -> Response {
        let tenant = try await tenant(request, context, fromPath: fromPath, otp: false)
        guard let text = context.parameters.get("id"), let id = Int64(text), id > 0 else {
            throw APIError.badRequest("invalid_delivery_id", "the delivery id is the event id, a positive integer")
        }
        let requeued: Bool
        do { requeued = try await settings.retry(for: tenant, eventID: id) } catch let error as WebhookSettingsError { throw Self.apiError(error) }
        guard requeued else { throw APIError(.notFound, "delivery_not_found", "no dead delivery of event \(id)") }
        return JSONBody.object(["status": .string("queued"), "id": .int(Int(id))]).response(status: .accepted)
    }

    private func redeliver(_ request: Request, _ context: AdminRequestContext, fromPath: Bool) async throws -> Response {
        // A replay moves the queue like a configuration change does (an `after` beyond the log would skip what comes).
        let tenant = try await tenant(request, context, fromPath: fromPath, otp: true)
        guard let text = request.uri.queryParameters.get("after"), let after = Int64(text), after >= 0 else {
            throw APIError.badRequest("invalid_after", "after must be an event id (0 replays the whole log)")
        }
        let rewound: Bool
        do { rewound = try await settings.redeliver(for: tenant, after: after) } catch let error as WebhookSettingsError { throw Self.apiError(error) }
        guard rewound else { throw Self.notFound }
        await SessionActions(dependencies: dependencies).audit("webhook.redeliver", tenant: tenant, by: .api("tenant:\(tenant)", context))
        return JSONBody.object(["status": .string("queued"), "after": .int(Int(after))]).response(status: .accepted)
    }

    static let notFound = APIError(.notFound, "webhook_not_found", "this tenant has no webhook")

    static func body(_ view: WebhookView) -> JSONBody {
        guard let secret = view.secret else { return .object(["url": .string(view.url), "events": .strings(view.events)]) }
        return .object(["url": .string(view.url), "events": .strings(view.events), "secret": .string(secret)])
    }

    static func apiError(_ error: WebhookSettingsError) -> APIError {
        switch error {
        case .url(let error):
            error.kind == .forbidden
                ? APIError.badRequest("webhook_url_forbidden", "\(error) (serve --allow-private-webhooks allows it)")
                : APIError.badRequest("webhook_url_invalid", error.description)
        case .invalidEvents(let text): APIError.badRequest("invalid_events", text)
        case .storage: APIError.storageUnavailable()
        }
    }
}
