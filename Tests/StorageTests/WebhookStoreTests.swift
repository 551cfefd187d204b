import Foundation
import Storage
import Tenancy
import TestSupport
import Testing

/// The webhook outbox on every backend: a cursor into the event log, failures, dead letters, re-queues, rewinds.
@Suite struct WebhookStoreTests {
    func append(_ store: any SystemStore, _ tenant: TenantName, _ types: [String]) async throws -> [Int64] {
        try await store.appendEvents(types.map { NewTenantEvent(tenant: tenant, type: $0, at: Date(), data: "{}") }).compactMap { $0 }
    }

    @Test(arguments: Backend.available)
    func theQueueIsTheLogAfterTheCursor(_ backend: Backend) async throws {
        let store = try await backend.makeStore()
        let acme = try TenantName("acme")
        try await store.createTenant(Tenant(name: acme, createdAt: Date(), mfaEnabled: false), adminTokenHash: "$argon2id$x", otpSecret: nil)
        let before = try await append(store, acme, ["session"])
        #expect(try await store.putWebhook(for: acme, url: "https://a.example/h", events: ["message"], sealedSecret: [1, 2]) == true)
        var webhook = try #require(try await store.webhook(for: acme))
        #expect(webhook.cursor == before.last && webhook.events == ["message"] && webhook.sealedSecret == [1, 2], "a new webhook starts after the log")
        #expect(try await store.dueWebhooks(at: Date(), limit: 10).isEmpty)

        // Changing it keeps the position and the secret.
        #expect(try await store.putWebhook(for: acme, url: "https://b.example/h", events: ["message", "receipt"], sealedSecret: [9]) == false)
        webhook = try #require(try await store.webhook(for: acme))
        #expect(webhook.url == "https://b.example/h" && webhook.sealedSecret == [1, 2] && webhook.cursor == before.last)

        let ids = try await append(store, acme, ["message", "receipt", "message"])
        #expect(try await store.dueWebhooks(at: Date(), limit: 10).map(\.tenant) == [acme])
        let now = Date()
        try await store.recordWebhookFailure(
            for: acme, at: webhook.cursor, attempts: 1, firstFailureAt: now, nextAttemptAt: now.addingTimeInterval(60), error: "HTTP 500")
        webhook = try #require(try await store.webhook(for: acme))
        #expect(webhook.attempts == 1 && webhook.lastError == "HTTP 500")
        #expect(try await store.dueWebhooks(at: now, limit: 10).isEmpty, "not due before its next attempt")
        #expect(try await store.dueWebhooks(at: now.addingTimeInterval(61), limit: 10).count == 1)
        let backlog = try await store.webhookBacklog()
        #expect(backlog.depth == 3 && backlog.oldest != nil)

        // Delivered: the cursor moves only from where the caller saw it.
        #expect(try await store.advanceWebhook(for: acme, from: webhook.cursor, to: ids[0]))
        #expect(try await store.advanceWebhook(for: acme, from: webhook.cursor, to: ids[0]) == false, "a stale cursor does not move it")
        webhook = try #require(try await store.webhook(for: acme))
        #expect(webhook.cursor == ids[0] && webhook.attempts == 0 && webhook.lastError == nil)

        // Dead: parked, and the cursor moves past it in the same transaction; re-queued by hand, then delivered.
        #expect(try await store.deadLetterWebhookHead(for: acme, from: ids[0], eventID: ids[1], attempts: 7, firstFailureAt: now, error: "x", now: now))
        #expect(try await store.webhook(for: acme)?.cursor == ids[1])
        var dead = try await store.parkedWebhookDeliveries(for: acme, status: "dead", limit: 10)
        #expect(dead.map(\.eventID) == [ids[1]] && dead[0].attempts == 7)
        #expect(try await store.requeueWebhookDelivery(for: acme, eventID: ids[1], now: now))
        #expect(try await store.requeueWebhookDelivery(for: acme, eventID: ids[1], now: now) == false, "only a dead one is re-queued")
        let queued = try #require(try await store.parkedWebhookDeliveries(for: acme, status: "queued", limit: 10).first)
        #expect(queued.attempts == 0)
        try await store.updateParkedWebhookDelivery(queued, delivered: true)
        dead = try await store.parkedWebhookDeliveries(for: acme, status: "dead", limit: 10)
        let stillQueued = try await store.parkedWebhookDeliveries(for: acme, status: "queued", limit: 10)
        #expect(dead.isEmpty && stillQueued.isEmpty)

        // Undelivered events outlive the retention; a rewind replays; deleting the webhook frees them.
        #expect(try await store.trimEvents(olderThan: Date().addingTimeInterval(3600)) == 3, "only the events at or before the cursor")
        #expect(try await store.events(of: acme, after: 0, limit: 10).map(\.id) == [ids[2]])
        #expect(try await store.rewindWebhook(for: acme, after: 1_000_000))
        #expect(try await store.webhook(for: acme)?.cursor == ids[2], "a rewind beyond the log stops at its newest event")
        #expect(try await store.rewindWebhook(for: acme, after: 0))
        #expect(try await store.webhook(for: acme)?.cursor == 0)
        #expect(try await store.replaceWebhookSecret(for: acme, sealedSecret: [7]))
        #expect(try await store.webhook(for: acme)?.sealedSecret == [7])
        #expect(try await store.deleteWebhook(for: acme))
        #expect(try await store.deleteWebhook(for: acme) == false)
        #expect(try await store.trimEvents(olderThan: Date().addingTimeInterval(3600)) == 1)
        try await store.close()
    }
}
