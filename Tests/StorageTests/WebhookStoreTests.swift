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
        #expect(try await store.dueWebhooks(at: Date(), node: "node-c", limit: 10).isEmpty)

        // Changing it keeps the position and the secret.
        #expect(try await store.putWebhook(for: acme, url: "https://b.example/h", events: ["message", "receipt"], sealedSecret: [9]) == false)
        webhook = try #require(try await store.webhook(for: acme))
        #expect(webhook.url == "https://b.example/h" && webhook.sealedSecret == [1, 2] && webhook.cursor == before.last)

        let ids = try await append(store, acme, ["message", "receipt", "message"])
        #expect(try await store.dueWebhooks(at: Date(), node: "node-c", limit: 10).map(\.tenant) == [acme])
        let now = Date()
        try await store.recordWebhookFailure(
            for: acme, at: webhook.cursor, attempts: 1, firstFailureAt: now, nextAttemptAt: now.addingTimeInterval(60), error: "HTTP 500")
        webhook = try #require(try await store.webhook(for: acme))
        #expect(webhook.attempts == 1 && webhook.lastError == "HTTP 500")
        #expect(try await store.dueWebhooks(at: now, node: "node-c", limit: 10).isEmpty, "not due before its next attempt")
        #expect(try await store.dueWebhooks(at: now.addingTimeInterval(61), node: "node-c", limit: 10).count == 1)
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
        var dead = try await store.parkedWebhookDeliveries(for: acme, status: "dead", dueBy: nil, limit: 10)
        #expect(dead.map(\.eventID) == [ids[1]] && dead[0].attempts == 7)
        #expect(try await store.requeueWebhookDelivery(for: acme, eventID: ids[1], now: now))
        #expect(try await store.requeueWebhookDelivery(for: acme, eventID: ids[1], now: now) == false, "only a dead one is re-queued")
        let queued = try #require(try await store.parkedWebhookDeliveries(for: acme, status: "queued", dueBy: nil, limit: 10).first)
        #expect(queued.attempts == 0)
        try await store.updateParkedWebhookDelivery(queued, delivered: true)
        dead = try await store.parkedWebhookDeliveries(for: acme, status: "dead", dueBy: nil, limit: 10)
        let stillQueued = try await store.parkedWebhookDeliveries(for: acme, status: "queued", dueBy: nil, limit: 10)
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

    @Test(arguments: Backend.available)
    func oneNodeHoldsAWebhookAtATimeAndTheLongestWaitingIsServedFirst(_ backend: Backend) async throws {
        let store = try await backend.makeStore()
        let names = try ["acme", "beta", "gamma"].map(TenantName.init)
        for name in names {
            try await store.createTenant(Tenant(name: name, createdAt: Date(), mfaEnabled: false), adminTokenHash: "$argon2id$x", otpSecret: nil)
            _ = try await store.putWebhook(for: name, url: "https://\(name).example/h", events: ["message"], sealedSecret: [1])
            _ = try await append(store, name, ["message"])
        }
        let (acme, beta, gamma) = (names[0], names[1], names[2])
        let now = Date()
        let until = now.addingTimeInterval(30)
        let claimed = try #require(try await store.claimWebhook(for: acme, node: "node-a", until: until, now: now))
        #expect(claimed.tenant == acme && claimed.cursor == 0, "the claim returns the row as it stands")
        #expect(try await store.claimWebhook(for: acme, node: "node-b", until: until, now: now) == nil, "another node cannot claim a held webhook")
        #expect(try await store.claimWebhook(for: acme, node: "node-a", until: until, now: now) != nil, "the holder claims again (a restart)")
        #expect(try await store.dueWebhooks(at: now, node: "node-c", limit: 10).map(\.tenant).contains(acme) == false, "a claimed webhook is not due")
        #expect(try await store.dueWebhooks(at: now, node: "node-a", limit: 10).map(\.tenant).contains(acme), "but due for its holder (a restart)")
        // A tenant whose session another node runs is that node's to deliver.
        _ = try await store.acquireLease(for: gamma, nodeID: "node-b", ttl: .seconds(2), now: now)
        #expect(try await store.dueWebhooks(at: now, node: "node-c", limit: 10).map(\.tenant).contains(gamma) == false)
        #expect(try await store.dueWebhooks(at: now, node: "node-b", limit: 10).map(\.tenant).contains(gamma))
        #expect(try await store.dueWebhooks(at: now.addingTimeInterval(2.5), node: "node-c", limit: 10).map(\.tenant).contains(gamma), "a lapsed lease")
        #expect(try await store.claimWebhook(for: acme, node: "node-b", until: until.addingTimeInterval(30), now: until) != nil, "an expired claim is free")

        // Released webhooks go to the back of the queue: the due list is served longest-waiting first.
        try await store.releaseWebhook(for: acme, node: "node-a", until: now)
        #expect(try await store.claimWebhook(for: acme, node: "node-a", until: until, now: now) == nil, "only the holder's release counts")
        try await store.releaseWebhook(for: acme, node: "node-b", until: now.addingTimeInterval(1))
        _ = try await store.claimWebhook(for: beta, node: "node-a", until: now.addingTimeInterval(2), now: now)
        try await store.releaseWebhook(for: beta, node: "node-a", until: now.addingTimeInterval(2))
        let later = now.addingTimeInterval(3)
        #expect(try await store.dueWebhooks(at: later, node: "node-c", limit: 10).map(\.tenant) == [gamma, acme, beta])
        #expect(try await store.dueWebhooks(at: later, node: "node-c", limit: 1).map(\.tenant) == [gamma])
        // A release in the future rests the webhook until then; a change by its owner ends the rest.
        _ = try await store.claimWebhook(for: gamma, node: "node-a", until: later, now: later)
        try await store.releaseWebhook(for: gamma, node: "node-a", until: later.addingTimeInterval(300))
        #expect(try await store.dueWebhooks(at: later, node: "node-c", limit: 10).map(\.tenant) == [acme, beta])
        #expect(try await store.replaceWebhookSecret(for: gamma, sealedSecret: [2]))
        #expect(try await store.dueWebhooks(at: later, node: "node-c", limit: 10).map(\.tenant) == [gamma, acme, beta])
        // A live claim is not ended by such a change.
        _ = try await store.claimWebhook(for: gamma, node: "node-a", until: later.addingTimeInterval(30), now: later)
        #expect(try await store.rewindWebhook(for: gamma, after: 0))
        #expect(try await store.claimWebhook(for: gamma, node: "node-b", until: later.addingTimeInterval(30), now: later) == nil)
        try await store.releaseWebhook(for: gamma, node: "node-a", until: later.addingTimeInterval(300))

        // Re-queued deliveries are read by due time, so a later one cannot hide a due one behind the limit.
        let betaEvents = try await append(store, beta, ["message", "message"])
        let betaCursor = try #require(try await store.webhook(for: beta)).cursor
        #expect(try await store.deadLetterWebhookHead(for: beta, from: betaCursor, eventID: betaEvents[0], attempts: 1, firstFailureAt: now, error: "x", now: now))
        #expect(try await store.requeueWebhookDelivery(for: beta, eventID: betaEvents[0], now: now.addingTimeInterval(600)))
        #expect(try await store.parkedWebhookDeliveries(for: beta, status: "queued", dueBy: later, limit: 1).isEmpty)
        #expect(try await store.parkedWebhookDeliveries(for: beta, status: "queued", dueBy: now.addingTimeInterval(600), limit: 1).count == 1)

        // The operator's view: every webhook with its pending, dead and failure state.
        try await store.recordWebhookFailure(
            for: acme, at: 0, attempts: 3, firstFailureAt: now, nextAttemptAt: now.addingTimeInterval(9), error: "HTTP 503")
        let health = try await store.webhookHealth()
        #expect(health.map(\.tenant) == [acme, beta, gamma])
        #expect(health[0].attempts == 3 && health[0].lastError == "HTTP 503" && health[0].firstFailureAt != nil && health[0].pending == 1)
        #expect(health[1].dead == 0 && health[1].pending == 1 && health[1].firstFailureAt == nil, "a re-queued delivery is not dead")
        #expect(health[2].dead == 0 && health[2].attempts == 0 && health[2].url == "https://gamma.example/h")
        try await store.close()
    }

    @Test(arguments: Backend.available)
    func concurrentFirstPutsBothSucceedAndOneCreates(_ backend: Backend) async throws {
        let store = try await backend.makeStore()
        let acme = try TenantName("acme")
        try await store.createTenant(Tenant(name: acme, createdAt: Date(), mfaEnabled: false), adminTokenHash: "$argon2id$x", otpSecret: nil)
        let created = try await withThrowingTaskGroup(of: Bool.self) { group in
            for index in 0..<8 {
                group.addTask { try await store.putWebhook(for: acme, url: "https://\(index).example/h", events: ["message"], sealedSecret: [UInt8(index)]) }
            }
            return try await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(created.filter { $0 }.count == 1, "exactly one of the concurrent first PUTs creates the webhook")
        try await store.close()
    }
}
