import App
import Foundation
import HummingbirdTesting
import NIOCore
import Logging
import Storage
import Synchronization
import Tenancy
import TestSupport
import Testing
import Webhooks

/// Running webhooks: two nodes on one database never send one tenant's deliveries at once; the operator's dashboard
/// shows which tenants' webhooks fail.
@Suite struct WebhookOperationTests {
    @Test func twoNodesNeverSendOneTenantsDeliveriesAtOnce() async throws {
        let directory = try makeTemporaryDirectory("wahost-webhook-claims")
        let store = try SQLiteSystemStore(path: directory + "/system.db")
        let receiver = try WebhookReceiver()
        try await receiver.start()
        receiver.delay.withLock { $0 = .milliseconds(15) }
        let settings = WebhookSettings(repository: store, masterKey: MasterKey.generate(), allowPrivate: true)
        let tenants = try (1...4).map { try TenantName("tenant-\($0)") }
        let perTenant = 40
        for tenant in tenants {
            try await store.createTenant(Tenant(name: tenant, createdAt: Date(), mfaEnabled: false), adminTokenHash: "$argon2id$x", otpSecret: nil)
            _ = try await settings.put(for: tenant, url: "http://127.0.0.1:\(receiver.port)/hook", events: ["message"])
            _ = try await store.appendEvents(
                (0..<perTenant).map { NewTenantEvent(tenant: tenant, type: "message", at: Date(), data: #"{"id": "m\#($0)"}"#) })
        }
        let nodes = ["node-a", "node-b"].map { node in
            WebhookDeliverer(
                repository: store, settings: settings, node: node, logger: Logger(label: "test.\(node)"),
                pollInterval: .milliseconds(5))
        }
        let running = nodes.map { node in Task { try await node.run() } }
        defer { for task in running { task.cancel() } }
        try await eventually(timeout: .seconds(60), "every event delivered") { receiver.deliveries.count >= tenants.count * perTenant }
        try await Task.sleep(for: .milliseconds(300))

        #expect(receiver.inFlight.withLock { $0.peak } == 1, "no tenant ever had two deliveries in flight")
        for tenant in tenants {
            let ids = receiver.deliveries.filter { $0.object["tenant"] as? String == tenant.rawValue }.compactMap { Int($0.headers["x-wahost-delivery"] ?? "") }
            #expect(ids == ids.sorted() && Set(ids).count == ids.count && ids.count == perTenant, "\(tenant): each event once, in log order")
        }
        for task in running { task.cancel() }
        for task in running { _ = await task.result }
        await receiver.stop()
        try await store.close()
    }

    @Test func aWebhookWhoseSecretDoesNotOpenIsRestedAndShowsWhy() async throws {
        let directory = try makeTemporaryDirectory("wahost-webhook-rest")
        let store = try SQLiteSystemStore(path: directory + "/system.db")
        let acme = try TenantName("acme")
        try await store.createTenant(Tenant(name: acme, createdAt: Date(), mfaEnabled: false), adminTokenHash: "$argon2id$x", otpSecret: nil)
        // Sealed under no key this deliverer has (as after a master-key change).
        _ = try await store.putWebhook(for: acme, url: "http://127.0.0.1:9/hook", events: ["message"], sealedSecret: Array(repeating: 7, count: 60))
        _ = try await store.appendEvents([NewTenantEvent(tenant: acme, type: "message", at: Date(), data: "{}")])
        let settings = WebhookSettings(repository: store, masterKey: MasterKey.generate(), allowPrivate: true)
        let deliverer = WebhookDeliverer(
            repository: store, settings: settings, node: "node-a", logger: Logger(label: "test"), pollInterval: .milliseconds(5))
        let running = Task { try await deliverer.run() }
        defer { running.cancel() }
        try await eventually("the failure recorded") { try await store.webhook(for: acme)?.lastError?.contains("does not open") == true }
        // The rest is stored when the turn releases its claim, just after the error: wait for that, not only the error.
        try await eventually("the webhook rested") { try await store.dueWebhooks(at: Date().addingTimeInterval(200), node: "node-b", limit: 10).isEmpty }
        running.cancel()
        _ = await running.result
        // Rested for the backoff cap (5 min), not retried every poll: no node can claim it before then.
        #expect(try await store.claimWebhook(for: acme, node: "node-b", until: Date().addingTimeInterval(30), now: Date().addingTimeInterval(200)) == nil)
        #expect(try await store.dueWebhooks(at: Date(), node: "node-a", limit: 10).isEmpty)
        #expect(try await store.webhookHealth().first?.firstFailureAt != nil, "the operator sees it failing")
        // A new secret from its owner ends the rest at once.
        #expect(try await store.replaceWebhookSecret(for: acme, sealedSecret: Array(repeating: 8, count: 60)))
        #expect(try await store.dueWebhooks(at: Date(), node: "node-a", limit: 10).map(\.tenant) == [acme])
        try await store.close()
    }

    @Test func theOperatorDashboardShowsFailingWebhooks() async throws {
        let services = try await SecurityRulesTests.openServices()
        let store = services.store
        let operatorToken = try await services.tenants.issueOperatorToken(actor: "test")
        let (acme, beta, gamma) = (try TenantName("acme"), try TenantName("beta"), try TenantName("gamma"))
        for tenant in [acme, beta, gamma] { _ = try await services.tenants.createTenant(tenant, mfa: false, actor: "test") }
        // acme: its head event failing for 10 minutes with a dead letter behind it; beta: up to date; gamma: no webhook.
        for tenant in [acme, beta] { _ = try await store.putWebhook(for: tenant, url: "https://\(tenant).example/hook", events: ["message"], sealedSecret: [1]) }
        let ids = try await store.appendEvents((0..<3).map { _ in NewTenantEvent(tenant: acme, type: "message", at: Date(), data: "{}") }).compactMap { $0 }
        let now = Date()
        #expect(try await store.deadLetterWebhookHead(for: acme, from: 0, eventID: ids[0], attempts: 9, firstFailureAt: now, error: "HTTP 500", now: now))
        try await store.recordWebhookFailure(
            for: acme, at: ids[0], attempts: 4, firstFailureAt: now.addingTimeInterval(-600), nextAttemptAt: now.addingTimeInterval(3600),
            error: "HTTP 503")

        let app = try buildApplication(services: services, logger: Logger(label: "test"))
        try await app.test(.live) { client in
            let cookie = try await DashboardRevocationTests.signIn(client, form: "kind=operator&token=\(operatorToken.text)")
            let page = String(buffer: try await DashboardRevocationTests.get(client, "/dashboard/operator", cookie: cookie).body)
            func cell(_ tenant: String) -> String {
                guard let start = page.range(of: "data-webhook=\"\(tenant)\"") else { return "" }
                let rest = page[start.upperBound...]
                return String(rest[..<(rest.range(of: "</td>")?.lowerBound ?? rest.endIndex)])
            }
            #expect(page.contains("1 tenant with failing webhooks"), "the failing tenants are counted above the table")
            let acmeCell = cell("acme")
            #expect(acmeCell.contains("failing for 10 min (4 attempts): HTTP 503") && acmeCell.contains("1 dead-lettered"), "\(acmeCell)")
            #expect(acmeCell.contains("2 pending") && acmeCell.contains("https://acme.example/hook"), "\(acmeCell)")
            #expect(page.contains(#"<td class="failing" data-webhook="acme""#))
            #expect(cell("beta").hasSuffix(">up to date") && !page.contains(#"class="failing" data-webhook="beta""#), "\(cell("beta"))")
            #expect(cell("gamma").hasSuffix(">—"))
        }
        await services.close()
    }
}
