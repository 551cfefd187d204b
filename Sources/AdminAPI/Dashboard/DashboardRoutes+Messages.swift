import Foundation
import Hummingbird
import SessionPool
import Tenancy

/// The tenant page's messages: the newest message and receipt events of the log, and the "send a text" form.
extension DashboardRoutes {
    /// How many messages the tenant page lists.
    static let messagesShown = 20

    /// The list as a fragment, for the page's refresh.
    func messagesFragment(_ request: Request, _ context: AdminRequestContext) async throws -> Response {
        guard let session = try await currentSession(request) else { throw APIError(.unauthorized, "signed_out", "sign in again") }
        let tenant = try await tenantFor(session, request.uri.queryParameters["tenant"].map(String.init))
        var response = try page("messages", await messageValues(tenant.name))
        response.headers[.cacheControl] = "no-store"
        return response
    }

    /// Sends the form's text through the same action as the API.
    func sendMessage(_ request: Request, _ context: AdminRequestContext) async throws -> Response {
        let (session, form) = try await requireSession(request, context, form: TenantForm.self)
        let tenant = try await tenantFor(session, form.tenant)
        let sent: SentText
        do {
            sent = try await SessionActions(dependencies: dependencies).sendText(
                tenant.name, to: form.to?.trimmingCharacters(in: .whitespaces) ?? "", text: form.text ?? "", idempotencyKey: nil)
        } catch {
            return try await renderTenant(tenant, session, error: "Not sent: \(error.message)", status: error.status)
        }
        return try await renderTenant(tenant, session, notice: "Sent to \(sent.to) (message \(sent.id)).")
    }

    /// The newest messages (both directions) of the tenant, oldest first, for the template.
    func messageValues(_ tenant: TenantName) async -> [String: Any] {
        guard let log = dependencies.eventLog else { return ["messagesEmpty": "This process keeps no event log."] }
        let events: [StoredTenantEvent]
        do { events = try await log.recent(of: tenant, types: ["message"], limit: Self.messagesShown) } catch {
            return ["messagesEmpty": "Messages could not be loaded: \(error)"]
        }
        let rows = events.compactMap { event -> [String: Any]? in
            guard let data = try? JSONSerialization.jsonObject(with: Data(event.data.utf8)) as? [String: Any] else { return nil }
            let fromMe = data["from_me"] as? Bool == true
            let chat = data["chat"] as? String ?? ""
            var row: [String: Any] = [
                "direction": fromMe ? "sent" : "received", "time": Self.timeFormat.string(from: event.at),
                "who": fromMe ? "You → \(chat)" : (data["push_name"] as? String).map { "\($0) (\(data["from"] as? String ?? ""))" } ?? data["from"] as? String ?? "",
                "chat": chat, "note": "unsupported content: " + ((data["unsupported"] as? [String])?.joined(separator: ", ") ?? "unknown"),
            ]
            row["group"] = data["group"] as? Bool == true ? true : nil
            row["text"] = data["text"] as? String
            return row
        }
        guard !rows.isEmpty else { return ["messagesEmpty": "No messages yet."] }
        return ["hasMessages": true, "messages": rows]
    }

    private static let timeFormat: DateFormatter = {
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss"
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter
    }()
}
