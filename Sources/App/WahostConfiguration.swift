import Foundation
import SessionPool
import Tenancy
import Webhooks
import WhatsApp

/// Everything `wahost` reads from flags and environment (docs/operations.md).
public struct WahostConfiguration: Sendable {
    /// Address to listen on.
    public var host: String
    /// Port to listen on.
    public var port: Int
    /// Holds `system.db` and `auth/`.
    public var dataDirectory: String
    /// `sqlite://…` or `postgres://…`; nil means `<data-dir>/system.db`.
    public var databaseURL: String?
    /// Names this process as a lease owner.
    public var nodeID: String
    /// Base64 master key from `WAHOST_MASTER_KEY`, if set.
    public var masterKeyBase64: String?
    /// WhatsApp's WebSocket URL (`WAHOST_WA_URL`); the simulator's in tests and demo mode.
    public var whatsAppURL: String
    /// Hex of the certificate-chain root key the server must chain to (`WAHOST_WA_ROOT_KEY`).
    public var whatsAppRootKeyHex: String?
    /// PEM file of the CA certificates the WhatsApp endpoint's TLS must chain to (`WAHOST_WA_CA_FILE`); nil: the system's.
    public var whatsAppCAFile: String?
    /// A lease not renewed for this long is taken over by another node (`WAHOST_LEASE_TTL`, seconds).
    public var leaseTTL: Duration
    /// Reverse proxies whose `X-Forwarded-For` is believed (`--trusted-proxy`, `WAHOST_TRUSTED_PROXIES`).
    public var trustedProxies: [IPNetwork] = []
    /// Audit entries older than this are deleted (`WAHOST_AUDIT_RETENTION_DAYS`, default 90); nil keeps them forever.
    public var auditRetention: Duration? = .seconds(90 * 86_400)
    /// How long the per-tenant event log keeps events (`WAHOST_EVENT_RETENTION_HOURS`, at least 24 h).
    public var eventRetention: Duration = .seconds(72 * 3600)
    /// The operator's notifier session (`--otp-sender`, `WAHOST_OTP_SENDER`): sends WhatsApp one-time codes for tenants
    /// whose own session is not connected.
    public var otpSender: TenantName?
    /// Webhooks may reach loopback, private and link-local addresses (`--allow-private-webhooks`,
    /// `WAHOST_ALLOW_PRIVATE_WEBHOOKS=1`).
    public var allowPrivateWebhooks = false
    /// How long a failing webhook delivery is retried before it is dead-lettered (`WAHOST_WEBHOOK_RETRY_HOURS`).
    public var webhookRetryFor: Duration = WebhookPolicy.standard.retryFor
    /// The longest wait between two attempts (`WAHOST_WEBHOOK_BACKOFF_CAP_SECONDS`).
    public var webhookBackoffCap: Duration = WebhookPolicy.standard.backoffCap
    /// At most this many sessions a minute a node hands to others to even the cluster out (`WAHOST_BALANCE_MOVES_PER_MINUTE`; 0: never).
    public var balanceMovesPerMinute = 60

    /// Divides the WhatsApp keepalive interval and deadline and the reconnect backoff (`WAHOST_TIME_SCALE`, 1-1000;
    /// 1 in production): a day of network faults fits in minutes of a chaos run (docs/reliability.md).
    public var timeScale = 1.0

    /// The session pool's settings from these.
    public var poolConfiguration: SessionPoolConfiguration {
        var pool = SessionPoolConfiguration(nodeID: nodeID, leaseTTL: leaseTTL, advertiseURL: advertiseURL)
        pool.balanceMovesPerMinute = balanceMovesPerMinute
        pool.backoff = Backoff(base: pool.backoff.base * (1 / timeScale), cap: pool.backoff.cap * (1 / timeScale))
        return pool
    }

    /// `client` with its keepalive interval and deadline divided by ``timeScale``.
    public func scaled(_ client: WhatsAppClientConfiguration) -> WhatsAppClientConfiguration {
        var client = client
        let factor = 1 / timeScale
        client.keepaliveInterval = client.keepaliveInterval.lowerBound * factor ... client.keepaliveInterval.upperBound * factor
        client.keepaliveDeadline = client.keepaliveDeadline * factor
        return client
    }

    /// `WAHOST_TIME_SCALE` as a number from 1 to 1000; throws with the rule on anything else.
    public static func timeScale(parsing text: String) throws(ConfigurationError) -> Double {
        guard let scale = Double(text.trimmingCharacters(in: .whitespaces)), scale.isFinite, (1...1000).contains(scale) else {
            throw ConfigurationError("WAHOST_TIME_SCALE must be a number from 1 to 1000 (keepalive and reconnect backoff timings are divided by it), not '\(text)'")
        }
        return scale
    }

    /// Where credential records live (`--credentials`, `WAHOST_CREDENTIALS`); nil: the database with PostgreSQL, else files.
    public var credentialsLocation: CredentialsLocation?

    /// Where sealed credential records are kept.
    public enum CredentialsLocation: String, Sendable, CaseIterable {
        /// `auth/<tenant>/` under the data directory.
        case files
        /// Rows of the system database, so nodes need no shared file system.
        case database
    }

    /// The location in effect: the one set, or the backend's default.
    public var effectiveCredentialsLocation: CredentialsLocation {
        credentialsLocation ?? (usesPostgres ? .database : .files)
    }

    /// Whether the system database is PostgreSQL.
    public var usesPostgres: Bool {
        guard let databaseURL else { return false }
        return databaseURL.hasPrefix("postgres://") || databaseURL.hasPrefix("postgresql://")
    }
    /// Where other nodes forward requests for this node's sessions (`--advertise-url`); nil: they cannot.
    public var advertiseURL: String?

    /// Sets ``advertiseURL`` from `text`, else from a concrete listen address; required for a cluster on a wildcard address.
    public mutating func resolveAdvertiseURL(_ text: String?) throws(ConfigurationError) {
        if let text, !text.isEmpty {
            advertiseURL = try Self.checkedAdvertiseURL(text)
            return
        }
        let wildcard = ["", "0.0.0.0", "::", "[::]", "*"].contains(host)
        if wildcard || port == 0 {
            guard !usesPostgres else {
                throw ConfigurationError(
                    "--advertise-url (WAHOST_ADVERTISE_URL) is required with a PostgreSQL database when listening on \(host.isEmpty ? "all addresses" : host) port \(port): other nodes forward requests to it, e.g. http://10.0.0.5:\(port == 0 ? 8080 : port)")
            }
            advertiseURL = nil
            return
        }
        let hostPart = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        advertiseURL = try Self.checkedAdvertiseURL("http://\(hostPart):\(port)")
    }

    /// `text` as an advertise URL without a trailing slash; throws when it is not a plain http(s) origin.
    static func checkedAdvertiseURL(_ text: String) throws(ConfigurationError) -> String {
        let trimmed = text.hasSuffix("/") ? String(text.dropLast()) : text
        guard let components = URLComponents(string: trimmed), let scheme = components.scheme?.lowercased(), scheme == "http" || scheme == "https",
            let host = components.host, !host.isEmpty, components.user == nil, components.password == nil, components.query == nil,
            components.fragment == nil, components.path.isEmpty, trimmed.utf8.count <= 512
        else {
            throw ConfigurationError("--advertise-url '\(text)' must be http:// or https:// with a host (and port), no path, user, query or fragment")
        }
        if let port = components.port, !(1...65535).contains(port) { throw ConfigurationError("--advertise-url '\(text)': port must be 1-65535") }
        return trimmed
    }

    /// The delivery policy these settings make.
    public var webhookPolicy: WebhookPolicy {
        var policy = WebhookPolicy.standard
        policy.retryFor = webhookRetryFor
        policy.backoffCap = webhookBackoffCap
        return policy
    }

    public init(
        host: String = "127.0.0.1", port: Int = 8080, dataDirectory: String = ".", databaseURL: String? = nil,
        nodeID: String = WahostConfiguration.defaultNodeID(), masterKeyBase64: String? = nil,
        whatsAppURL: String = "wss://web.whatsapp.com/ws/chat", whatsAppRootKeyHex: String? = nil, leaseTTL: Duration = .seconds(30)
    ) {
        self.host = host
        self.port = port
        self.dataDirectory = dataDirectory
        self.databaseURL = databaseURL
        self.nodeID = nodeID
        self.masterKeyBase64 = masterKeyBase64
        self.whatsAppURL = whatsAppURL
        self.whatsAppRootKeyHex = whatsAppRootKeyHex
        self.leaseTTL = leaseTTL
    }

    /// The `auth/` directory inside the data directory.
    public var authDirectory: String { dataDirectory + "/auth" }

    /// The host name; `NodeIdentity.claim` makes it unique among live processes on one data directory.
    public static func defaultNodeID() -> String {
        ProcessInfo.processInfo.hostName
    }
}
