import Foundation
import Logging
import Metrics
import ServiceLifecycle
import Synchronization
import Tenancy
import WahostBasics

/// Delivers every tenant's webhook events from the event log: one tenant's deliveries in log order, one at a time (a
/// failing one holds back that tenant's later ones, not other tenants'), retried with backoff, dead-lettered after
/// the policy's time; only for tenants this node should deliver (it runs the session, or nobody holds its lease), and
/// only while this node holds the webhook's claim, so two nodes never send the same tenant's deliveries at once.
public final class WebhookDeliverer: Service, Sendable {
    let repository: any WebhookRepository & EventLogRepository
    let settings: WebhookSettings
    let sender: WebhookSender
    let policy: WebhookPolicy
    /// This node's id, the holder named in its claims.
    let node: String
    let logger: Logger
    let now: @Sendable () -> Date
    /// How often the queue is looked at when nothing is due.
    let pollInterval: Duration
    /// Tenants delivered at once.
    let concurrency: Int
    private let inFlight = Mutex<Set<TenantName>>([])

    public init(
        repository: any WebhookRepository & EventLogRepository, settings: WebhookSettings, policy: WebhookPolicy = .standard,
        node: String, logger: Logger, pollInterval: Duration = .milliseconds(100),
        concurrency: Int = 256, now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.repository = repository
        self.settings = settings
        self.sender = WebhookSender(allowPrivate: settings.allowPrivate, timeout: policy.timeout)
        self.policy = policy
        self.node = node
        self.logger = logger
        self.pollInterval = pollInterval
        self.concurrency = concurrency
        self.now = now
    }

    public func run() async throws {
        // A graceful shutdown stops the polling and lets the turns in flight finish and store their cursors (a
        // cancelled turn could not store it, and everything it had delivered would be sent again).
        await withDiscardingTaskGroup { group in
            var lastGauges = ContinuousClock.now - .seconds(60)
            while !Task.isCancelled, !Task.isShuttingDownGracefully {
                if ContinuousClock.now - lastGauges >= .seconds(10) {
                    lastGauges = ContinuousClock.now
                    await self.updateGauges()
                }
                for webhook in await self.dueWebhooks() {
                    group.addTask {
                        await self.deliver(webhook)
                        _ = self.inFlight.withLock { $0.remove(webhook.tenant) }
                    }
                }
                try? await Task.sleep(for: self.pollInterval)
            }
        }
        await sender.shutdown()
    }

    /// Due webhooks of tenants this node delivers (the due query leaves out those whose session another node runs) and
    /// is not delivering already, marked in flight.
    private func dueWebhooks() async -> [StoredWebhook] {
        let free = concurrency - inFlight.withLock { $0.count }
        guard free > 0 else { return [] }
        let due: [StoredWebhook]
        // The due list includes this node's own claims (in flight, or left by a crash before a restart): ask for a
        // full window.
        do { due = try await repository.dueWebhooks(at: now(), node: node, limit: concurrency) } catch {
            logger.storageFailure("webhook queue not readable", error)
            return []
        }
        var chosen: [StoredWebhook] = []
        for webhook in due where chosen.count < free {
            guard inFlight.withLock({ $0.insert(webhook.tenant).inserted }) else { continue }
            chosen.append(webhook)
        }
        return chosen
    }

    /// The longest one attempt can take: the address lookup, then the request and its answer.
    var attemptBound: Duration { WebhookSender.lookupDeadline + policy.timeout + .seconds(3) }
    /// How long a turn's claim lasts: a turn starts no attempt that could outlast it.
    var claimDuration: Duration { attemptBound * 2 }

    /// One turn for one tenant, under this node's claim: its re-queued deliveries, then up to 100 events of its stream.
    func deliver(_ due: StoredWebhook) async {
        // The row is read again by the claim: the due list can predate the last turn's cursor, and starting from a
        // stale cursor would send again what that turn delivered.
        let claimedUntil = now().addingTimeInterval(claimDuration.timeInterval)
        let claimed: StoredWebhook?
        do { claimed = try await repository.claimWebhook(for: due.tenant, node: node, until: claimedUntil, now: now()) } catch {
            logger.storageFailure("webhook not readable", error, metadata: ["tenant": "\(due.tenant)"])
            return
        }
        guard let webhook = claimed else { return }
        let restUntil = await deliver(Turn(webhook: webhook, claimedUntil: claimedUntil))
        do { try await repository.releaseWebhook(for: webhook.tenant, node: node, until: restUntil) } catch {
            logger.storageFailure("webhook claim not released", error, metadata: ["tenant": "\(webhook.tenant)"])
        }
    }

    /// The claimed turn; returns when the webhook is next due (now, or later to rest a broken one).
    private func deliver(_ turn: Turn) async -> Date {
        let webhook = turn.webhook
        guard let secret = settings.secret(of: webhook), let url = try? WebhookURL(webhook.url, allowPrivate: true) else {
            // Another master key, or a row changed by hand: rest it (by the claim's release time alone, which a change
            // by its owner ends) instead of failing on every poll; the error is recorded for the operator.
            logger.error("webhook cannot be delivered: its secret does not open or its URL is invalid", metadata: ["tenant": "\(webhook.tenant)"])
            try? await repository.recordWebhookFailure(
                for: webhook.tenant, at: webhook.cursor, attempts: webhook.attempts, firstFailureAt: webhook.firstFailureAt ?? now(),
                nextAttemptAt: webhook.nextAttemptAt, error: "the webhook's secret does not open with this master key, or its URL is invalid")
            return now().addingTimeInterval(policy.backoffCap.timeInterval)
        }
        do {
            try await deliverQueued(turn, secret: secret, url: url)
            if webhook.nextAttemptAt <= now() { try await deliverStream(turn, secret: secret, url: url) }
        } catch {
            logger.storageFailure("webhook delivery state not stored", error, metadata: ["tenant": "\(webhook.tenant)"])
        }
        return now()
    }

    /// A claimed webhook and until when the claim holds.
    struct Turn {
        let webhook: StoredWebhook
        let claimedUntil: Date
    }

    /// True while an attempt started now would end (answer or timeout) before the claim does.
    private func mayStartAttempt(in turn: Turn) -> Bool {
        !Task.isShuttingDownGracefully && !Task.isCancelled
            && now().addingTimeInterval(attemptBound.timeInterval) < turn.claimedUntil
    }

    /// Delivers the tenant's stream in order; the cursor is stored once per turn (and before a failure is recorded),
    /// so a crash in between only sends again what was already sent.
    private func deliverStream(_ turn: Turn, secret: [UInt8], url: WebhookURL) async throws(RepositoryError) {
        let webhook = turn.webhook
        var stored = webhook.cursor
        var position = webhook.cursor
        var attempts = webhook.attempts
        var firstFailure = webhook.firstFailureAt
        var budget = 100
        func store() async throws(RepositoryError) -> Bool {
            guard position > stored else { return true }
            guard try await repository.advanceWebhook(for: webhook.tenant, from: stored, to: position) else { return false }
            stored = position
            return true
        }
        reading: while budget > 0 {
            let events = try await repository.events(of: webhook.tenant, after: position, limit: 100)
            for event in events {
                guard webhook.events.contains(event.type) else {
                    position = event.id
                    continue
                }
                guard budget > 0, mayStartAttempt(in: turn) else { break reading }
                budget -= 1
                let outcome = await sender.post(WebhookRequest(event: event, tenant: webhook.tenant, secret: secret, now: now()), to: url)
                if outcome == .delivered {
                    Self.count("success")
                    (position, attempts, firstFailure) = (event.id, 0, nil)
                    continue
                }
                guard try await store() else { return }
                let reason = Self.reason(outcome)
                attempts += 1
                let first = firstFailure ?? now()
                switch policy.afterFailure(attempts: attempts, firstFailure: first, now: now(), random: Double.random(in: 0...1)) {
                case .deadLetter:
                    Self.count("dead")
                    logger.warning("webhook delivery dead-lettered", metadata: ["tenant": "\(webhook.tenant)", "event": "\(event.id)", "error": "\(reason)"])
                    guard
                        try await repository.deadLetterWebhookHead(
                            for: webhook.tenant, from: stored, eventID: event.id, attempts: attempts, firstFailureAt: first, error: reason, now: now())
                    else { return }
                    // The receiver has failed since `first`: later events die on their first failure until one is
                    // taken, so a dead receiver cannot hold the tenant's log past retention one day per event.
                    (stored, position, attempts, firstFailure) = (event.id, event.id, 0, first)
                    continue
                case .retry(let next):
                    Self.count("failure")
                    try await repository.recordWebhookFailure(
                        for: webhook.tenant, at: stored, attempts: attempts, firstFailureAt: first, nextAttemptAt: next, error: reason)
                    return
                }
            }
            if events.count < 100 { break }
        }
        _ = try await store()
    }

    private func deliverQueued(_ turn: Turn, secret: [UInt8], url: WebhookURL) async throws(RepositoryError) {
        let webhook = turn.webhook
        for var parked in try await repository.parkedWebhookDeliveries(for: webhook.tenant, status: "queued", dueBy: now(), limit: 20) {
            guard mayStartAttempt(in: turn) else { return }
            let found = try await repository.events(of: webhook.tenant, after: parked.eventID - 1, limit: 1).first
            guard let event = found, event.id == parked.eventID else {
                parked.status = "dead"
                parked.lastError = "the event is no longer in the log"
                try await repository.updateParkedWebhookDelivery(parked, delivered: false)
                continue
            }
            let outcome = await sender.post(WebhookRequest(event: event, tenant: webhook.tenant, secret: secret, now: now()), to: url)
            if outcome == .delivered {
                Self.count("success")
                try await repository.updateParkedWebhookDelivery(parked, delivered: true)
                continue
            }
            parked.attempts += 1
            parked.lastError = Self.reason(outcome)
            let first = parked.firstFailureAt ?? now()
            parked.firstFailureAt = first
            switch policy.afterFailure(attempts: parked.attempts, firstFailure: first, now: now(), random: Double.random(in: 0...1)) {
            case .deadLetter:
                Self.count("dead")
                parked.status = "dead"
                parked.parkedAt = now()
            case .retry(let next):
                Self.count("failure")
                parked.nextAttemptAt = next
            }
            try await repository.updateParkedWebhookDelivery(parked, delivered: false)
        }
    }

    private func updateGauges() async {
        guard let backlog = try? await repository.webhookBacklog() else { return }
        Gauge(label: "wahost_webhook_queue_depth").record(backlog.depth)
        Gauge(label: "wahost_webhook_oldest_pending_seconds").record(backlog.oldest.map { max(0, now().timeIntervalSince($0)) } ?? 0)
    }

    private static func count(_ result: String) { Counter(label: "wahost_webhook_deliveries_total", dimensions: [("result", result)]).increment() }

    private static func reason(_ outcome: WebhookOutcome) -> String {
        if case .failed(let text) = outcome { return text }
        return "delivered"
    }
}
