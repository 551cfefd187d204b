import Foundation

/// A tenant's webhook as stored, with where its delivery stream stands.
public struct StoredWebhook: Sendable, Equatable {
    public var tenant: TenantName
    public var url: String
    /// The event types delivered (`message`, `receipt`, `session`).
    public var events: [String]
    /// The signing secret, sealed by the caller.
    public var sealedSecret: [UInt8]
    /// Every event id up to this one was delivered, dead-lettered or skipped (not one of `events`).
    public var cursor: Int64
    /// Failed attempts of the first event after the cursor.
    public var attempts: Int
    /// When that event first failed.
    public var firstFailureAt: Date?
    /// No attempt before this instant.
    public var nextAttemptAt: Date
    /// Why the last attempt failed (no secret, no body).
    public var lastError: String?

    public init(
        tenant: TenantName, url: String, events: [String], sealedSecret: [UInt8], cursor: Int64, attempts: Int = 0, firstFailureAt: Date? = nil,
        nextAttemptAt: Date = Date(timeIntervalSince1970: 0), lastError: String? = nil
    ) {
        self.tenant = tenant
        self.url = url
        self.events = events
        self.sealedSecret = sealedSecret
        self.cursor = cursor
        self.attempts = attempts
        self.firstFailureAt = firstFailureAt
        self.nextAttemptAt = nextAttemptAt
        self.lastError = lastError
    }
}

/// A delivery taken out of the stream: dead after its retries (`dead`), or put back by hand (`queued`).
public struct ParkedWebhookDelivery: Sendable, Equatable {
    public var tenant: TenantName
    public var eventID: Int64
    /// `dead` or `queued`.
    public var status: String
    public var attempts: Int
    public var firstFailureAt: Date?
    public var nextAttemptAt: Date
    public var lastError: String?
    /// When it was dead-lettered or re-queued.
    public var parkedAt: Date

    public init(
        tenant: TenantName, eventID: Int64, status: String, attempts: Int, firstFailureAt: Date?, nextAttemptAt: Date, lastError: String?,
        parkedAt: Date
    ) {
        self.tenant = tenant
        self.eventID = eventID
        self.status = status
        self.attempts = attempts
        self.firstFailureAt = firstFailureAt
        self.nextAttemptAt = nextAttemptAt
        self.lastError = lastError
        self.parkedAt = parkedAt
    }
}

/// Webhooks and their durable outbox. The outbox is the event log itself: each webhook keeps a cursor into its
/// tenant's log, so an event is queued by the same commit that stores it, and deliveries go out in log order.
public protocol WebhookRepository: Sendable {
    /// Creates the tenant's webhook (its stream starting after the newest event) or changes its URL and types
    /// (keeping its position and secret); true if it was created.
    func putWebhook(for tenant: TenantName, url: String, events: [String], sealedSecret: [UInt8]) async throws(RepositoryError) -> Bool
    /// The tenant's webhook, if it has one.
    func webhook(for tenant: TenantName) async throws(RepositoryError) -> StoredWebhook?
    /// Deletes the webhook and its parked deliveries; false if there was none.
    func deleteWebhook(for tenant: TenantName) async throws(RepositoryError) -> Bool
    /// Replaces the sealed secret; false if there is no webhook.
    func replaceWebhookSecret(for tenant: TenantName, sealedSecret: [UInt8]) async throws(RepositoryError) -> Bool
    /// Up to `limit` webhooks with something to deliver at `now` (an event after the cursor, or a queued parked one),
    /// the longest unserved first: unclaimed or claimed by `node` (before a restart), and of tenants whose session no
    /// other node holds a live lease on.
    func dueWebhooks(at now: Date, node: String, limit: Int) async throws(RepositoryError) -> [StoredWebhook]
    /// Claims the webhook for `node` until `until` if no other node holds it at `now`, and returns it as it stands;
    /// nil if another node holds it or there is none. Only the holder sends, so no delivery goes out twice at once.
    func claimWebhook(for tenant: TenantName, node: String, until: Date, now: Date) async throws(RepositoryError) -> StoredWebhook?
    /// Ends `node`'s claim; the webhook is not due again before `until` (now, or later to rest a broken one). A change
    /// by its owner (put, new secret, rewind, re-queue) ends a rest at once.
    func releaseWebhook(for tenant: TenantName, node: String, until: Date) async throws(RepositoryError)
    /// Moves the cursor from `expected` to `to` (delivered or skipped) and clears the failure state; false if the
    /// cursor is no longer `expected` (another node, a rewind).
    func advanceWebhook(for tenant: TenantName, from expected: Int64, to: Int64) async throws(RepositoryError) -> Bool
    /// Records a failed attempt at the event after the cursor `expected`.
    func recordWebhookFailure(
        for tenant: TenantName, at expected: Int64, attempts: Int, firstFailureAt: Date, nextAttemptAt: Date, error: String
    ) async throws(RepositoryError)
    /// Parks event `eventID` (the one after the cursor `expected`) as dead and moves the cursor past it, in one transaction.
    func deadLetterWebhookHead(
        for tenant: TenantName, from expected: Int64, eventID: Int64, attempts: Int, firstFailureAt: Date, error: String, now: Date
    ) async throws(RepositoryError) -> Bool
    /// The tenant's parked deliveries with this status (and, given `dueBy`, a next attempt not after it), oldest event first.
    func parkedWebhookDeliveries(for tenant: TenantName, status: String, dueBy: Date?, limit: Int) async throws(RepositoryError)
        -> [ParkedWebhookDelivery]
    /// Updates a parked delivery after an attempt: `delivered` deletes it; otherwise its new status and failure state.
    func updateParkedWebhookDelivery(_ delivery: ParkedWebhookDelivery, delivered: Bool) async throws(RepositoryError)
    /// Puts a dead delivery back in the queue with fresh attempts; false if there is no dead delivery of that event.
    func requeueWebhookDelivery(for tenant: TenantName, eventID: Int64, now: Date) async throws(RepositoryError) -> Bool
    /// Sets the cursor to `after`, at most the newest event (replaying the log from there), and clears the failure
    /// state; false without a webhook.
    func rewindWebhook(for tenant: TenantName, after: Int64) async throws(RepositoryError) -> Bool
    /// Events queued for every webhook (after each cursor, any type) and the oldest one's time, for metrics.
    func webhookBacklog() async throws(RepositoryError) -> (depth: Int, oldest: Date?)
    /// Every tenant's webhook with its delivery state, for the operator, by tenant name.
    func webhookHealth() async throws(RepositoryError) -> [WebhookHealth]
}

/// Where one tenant's webhook deliveries stand, as the operator sees them.
public struct WebhookHealth: Sendable, Equatable {
    public var tenant: TenantName
    public var url: String
    /// Events after the cursor (any type), not yet delivered or skipped.
    public var pending: Int
    /// Deliveries dead-lettered and not re-queued.
    public var dead: Int
    /// Failed attempts at the head of the stream, its first failure and why the last one failed.
    public var attempts: Int
    public var firstFailureAt: Date?
    public var lastError: String?

    public init(tenant: TenantName, url: String, pending: Int, dead: Int, attempts: Int, firstFailureAt: Date?, lastError: String?) {
        self.tenant = tenant
        self.url = url
        self.pending = pending
        self.dead = dead
        self.attempts = attempts
        self.firstFailureAt = firstFailureAt
        self.lastError = lastError
    }
}
