import Foundation
import Tenancy
import Webhooks

/// The operator page's webhook column: where each tenant's deliveries stand, failing ones marked and counted.
extension DashboardRoutes {
    /// Every tenant's webhook state by tenant; empty without webhooks. A storage failure shows as a page error.
    func webhookHealth() async throws -> [TenantName: WebhookHealth] {
        guard let settings = dependencies.webhooks else { return [:] }
        do { return Dictionary(try await settings.health().map { ($0.tenant, $0) }, uniquingKeysWith: { first, _ in first }) } catch {
            throw APIError.from(error)
        }
    }

    /// The template values of one tenant's webhook cell: `webhook` (what it says) and `webhookFailing` when it fails.
    static func webhookCell(_ health: WebhookHealth?, now: Date) -> [String: Any] {
        guard let health else { return ["webhook": "—"] }
        var parts: [String] = []
        var failing = false
        if let since = health.firstFailureAt {
            failing = true
            let minutes = max(0, Int(now.timeIntervalSince(since) / 60))
            parts.append("failing for \(minutes) min (\(health.attempts) attempts): \(health.lastError ?? "no answer")")
        }
        if health.dead > 0 {
            failing = true
            parts.append("\(health.dead) dead-lettered")
        }
        parts.append(health.pending == 0 ? "up to date" : "\(health.pending) pending")
        var values: [String: Any] = ["webhook": parts.joined(separator: "; "), "webhookURL": health.url]
        values["webhookFailing"] = failing ? true : nil
        return values
    }
}
