import Crypto
import Foundation
import Tenancy

/// A tenant's webhook as its owner sees it.
public struct WebhookView: Sendable, Equatable {
    public let url: String
    public let events: [String]
    /// Shown once: when the webhook is created and when the secret is rotated.
    public let secret: String?
}

/// One delivery as `GET …/webhook/deliveries` lists it.
public struct WebhookDeliveryView: Sendable, Equatable {
    /// The event id.
    public let id: Int64
    public let type: String?
    /// `pending`, `failed` or `dead`.
    public let status: String
    public let attempts: Int
    public let lastError: String?
    public let nextAttemptAt: Date?
}

/// Configuring webhooks: the URL checked (and its host resolved) unless private addresses are allowed, the secret made
/// and sealed, the delivery queue listed, re-queued and replayed.
public struct WebhookSettings: Sendable {
    /// The event types a webhook can ask for.
    public static let eventTypes = ["message", "receipt", "session"]

    let repository: any WebhookRepository & EventLogRepository
    let masterKey: MasterKey
    /// `serve --allow-private-webhooks`: loopback and private addresses are allowed.
    public let allowPrivate: Bool

    public init(repository: any WebhookRepository & EventLogRepository, masterKey: MasterKey, allowPrivate: Bool) {
        self.repository = repository
        self.masterKey = masterKey
        self.allowPrivate = allowPrivate
    }

    /// Creates or changes the tenant's webhook; the secret is in the answer only when it was created.
    public func put(for tenant: TenantName, url text: String, events: [String]?) async throws(WebhookSettingsError) -> WebhookView {
        let url = try await checkedURL(text)
        let types = try Self.checkedTypes(events)
        let secret = Self.newSecret()
        let created: Bool
        do { created = try await repository.putWebhook(for: tenant, url: url.text, events: types, sealedSecret: seal(secret, for: tenant)) } catch {
            throw WebhookSettingsError.storage(error)
        }
        return WebhookView(url: url.text, events: types, secret: created ? secret : nil)
    }

    /// The tenant's webhook without its secret, or nil.
    public func get(for tenant: TenantName) async throws(WebhookSettingsError) -> WebhookView? {
        let stored: StoredWebhook?
        do { stored = try await repository.webhook(for: tenant) } catch { throw WebhookSettingsError.storage(error) }
        return stored.map { WebhookView(url: $0.url, events: $0.events, secret: nil) }
    }

    /// Deletes the webhook and its parked deliveries; false if there was none.
    public func delete(for tenant: TenantName) async throws(WebhookSettingsError) -> Bool {
        do { return try await repository.deleteWebhook(for: tenant) } catch { throw WebhookSettingsError.storage(error) }
    }

    /// A new secret (the old one stops signing at once), or nil without a webhook.
    public func rotateSecret(for tenant: TenantName) async throws(WebhookSettingsError) -> String? {
        let secret = Self.newSecret()
        do { return try await repository.replaceWebhookSecret(for: tenant, sealedSecret: seal(secret, for: tenant)) ? secret : nil } catch {
            throw WebhookSettingsError.storage(error)
        }
    }

    /// Every tenant's webhook delivery state, by tenant name, for the operator.
    public func health() async throws(RepositoryError) -> [WebhookHealth] { try await repository.webhookHealth() }

    /// Deliveries with this status (`pending`, `failed`, `dead`), at most `limit`, oldest event first; nil without a webhook.
    public func deliveries(for tenant: TenantName, status: String, limit: Int = 100) async throws(WebhookSettingsError) -> [WebhookDeliveryView]? {
        do {
            guard let webhook = try await repository.webhook(for: tenant) else { return nil }
            if status == "dead" {
                return try await repository.parkedWebhookDeliveries(for: tenant, status: "dead", dueBy: nil, limit: limit).map {
                    WebhookDeliveryView(id: $0.eventID, type: nil, status: "dead", attempts: $0.attempts, lastError: $0.lastError, nextAttemptAt: nil)
                }
            }
            let queued = try await repository.parkedWebhookDeliveries(for: tenant, status: "queued", dueBy: nil, limit: limit).map {
                WebhookDeliveryView(
                    id: $0.eventID, type: nil, status: $0.attempts > 0 ? "failed" : "pending", attempts: $0.attempts, lastError: $0.lastError,
                    nextAttemptAt: $0.nextAttemptAt)
            }
            var stream: [WebhookDeliveryView] = []
            for event in try await repository.events(of: tenant, after: webhook.cursor, limit: limit) where webhook.events.contains(event.type) {
                let head = stream.isEmpty
                let attempts = head ? webhook.attempts : 0
                stream.append(
                    WebhookDeliveryView(
                        id: event.id, type: event.type, status: attempts > 0 ? "failed" : "pending", attempts: attempts,
                        lastError: head ? webhook.lastError : nil, nextAttemptAt: head && attempts > 0 ? webhook.nextAttemptAt : nil))
            }
            return Array((queued + stream).filter { $0.status == status }.prefix(limit))
        } catch {
            throw WebhookSettingsError.storage(error)
        }
    }

    /// Puts a dead delivery back in the queue; false if event `id` has no dead delivery.
    public func retry(for tenant: TenantName, eventID: Int64) async throws(WebhookSettingsError) -> Bool {
        do { return try await repository.requeueWebhookDelivery(for: tenant, eventID: eventID, now: Date()) } catch {
            throw WebhookSettingsError.storage(error)
        }
    }

    /// Replays the log from the event after `after` (everything queued since is sent again); false without a webhook.
    public func redeliver(for tenant: TenantName, after: Int64) async throws(WebhookSettingsError) -> Bool {
        do { return try await repository.rewindWebhook(for: tenant, after: after) } catch { throw WebhookSettingsError.storage(error) }
    }

    /// The signing secret of a stored webhook (nil if it does not open: another master key).
    func secret(of webhook: StoredWebhook) -> [UInt8]? {
        guard let box = try? AES.GCM.SealedBox(combined: webhook.sealedSecret),
            let plain = try? AES.GCM.open(box, using: key(for: webhook.tenant), authenticating: Self.associatedData(webhook.tenant))
        else { return nil }
        return Array(plain)
    }

    /// The URL's static rules and, unless private addresses are allowed, every address its host resolves to.
    func checkedURL(_ text: String) async throws(WebhookSettingsError) -> WebhookURL {
        do {
            let url = try WebhookURL(text, allowPrivate: allowPrivate)
            if !allowPrivate, IPAddress(url.host) == nil {
                for address in try await WebhookSender.resolve(url.host, port: url.port) { try ForbiddenAddresses.check(address) }
            }
            return url
        } catch {
            throw WebhookSettingsError.url(error)
        }
    }

    static func checkedTypes(_ events: [String]?) throws(WebhookSettingsError) -> [String] {
        guard let events else { return eventTypes }
        let unknown = events.filter { !eventTypes.contains($0) }
        guard !events.isEmpty, unknown.isEmpty else {
            throw WebhookSettingsError.invalidEvents("events must be a non-empty list of \(eventTypes.joined(separator: ", "))")
        }
        return eventTypes.filter(events.contains)
    }

    /// `whsec_` and 32 random bytes in URL-safe base64; receivers use the whole string as the HMAC key.
    static func newSecret() -> String { "whsec_" + SecureRandom.base64URL(32) }

    private func seal(_ secret: String, for tenant: TenantName) -> [UInt8] {
        // A 32-byte key and a fresh nonce: sealing cannot fail.
        let box = try! AES.GCM.seal(Array(secret.utf8), using: key(for: tenant), authenticating: Self.associatedData(tenant))
        return Array(box.combined!)
    }

    private func key(for tenant: TenantName) -> SymmetricKey { masterKey.derivedKey(for: tenant, purpose: .webhookSecret) }
    private static func associatedData(_ tenant: TenantName) -> [UInt8] { Array("webhook-secret:\(tenant.rawValue)".utf8) }
}

/// Why a webhook could not be configured.
public enum WebhookSettingsError: Error, CustomStringConvertible {
    case url(WebhookURLError)
    case invalidEvents(String)
    case storage(RepositoryError)

    public var description: String {
        switch self {
        case .url(let error): error.description
        case .invalidEvents(let text): text
        case .storage(let error): "the database is unavailable: \(error.message)"
        }
    }
}
