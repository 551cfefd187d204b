import Crypto
import Foundation
import Tenancy
import WahostBasics

/// How deliveries are timed: the per-attempt timeout, exponential backoff with full jitter, and when to give up.
public struct WebhookPolicy: Sendable {
    /// A delivery that has not answered 2xx by then failed.
    public var timeout: Duration
    /// The first retry waits up to this long; each further one up to twice as long as the one before.
    public var backoffBase: Duration
    /// No retry waits longer than this.
    public var backoffCap: Duration
    /// A delivery still failing this long after its first failure is dead-lettered.
    public var retryFor: Duration

    public init(timeout: Duration, backoffBase: Duration, backoffCap: Duration, retryFor: Duration) {
        self.timeout = timeout
        self.backoffBase = backoffBase
        self.backoffCap = backoffCap
        self.retryFor = retryFor
    }

    /// 10 s timeout, 1 s doubling to 5 min, 24 h.
    public static let standard = WebhookPolicy(timeout: .seconds(10), backoffBase: .seconds(1), backoffCap: .seconds(300), retryFor: .seconds(86_400))

    /// The wait before the retry after `attempts` failures: uniform in [0, min(cap, base × 2^(attempts−1))].
    public func backoff(afterAttempts attempts: Int, random: Double) -> Duration {
        let ceiling = min(backoffCap.timeInterval, backoffBase.timeInterval * pow(2, Double(min(max(attempts, 1) - 1, 30))))
        return .milliseconds(Int64((ceiling * min(max(random, 0), 1) * 1000).rounded()))
    }

    /// After a failed attempt (the `attempts`th, the first at `firstFailure`): dead-letter it once the policy's time has
    /// passed, else when to try again.
    public func afterFailure(attempts: Int, firstFailure: Date, now: Date, random: Double) -> WebhookRetry {
        givesUp(firstFailure: firstFailure, now: now)
            ? .deadLetter : .retry(at: now.addingTimeInterval(backoff(afterAttempts: attempts, random: random).timeInterval))
    }

    /// True once a delivery first failed at `firstFailure` should stop being retried at `now`.
    public func givesUp(firstFailure: Date, now: Date) -> Bool {
        now.timeIntervalSince(firstFailure) >= retryFor.timeInterval
    }
}

/// What follows a failed delivery attempt.
public enum WebhookRetry: Sendable, Equatable {
    /// Its time is up: park it as dead.
    case deadLetter
    /// Try again at this instant.
    case retry(at: Date)
}

/// One POST as sent: the body and the headers, signed.
public struct WebhookRequest: Sendable, Equatable {
    public let body: [UInt8]
    public let headers: [(String, String)]

    public static func == (lhs: WebhookRequest, rhs: WebhookRequest) -> Bool {
        lhs.body == rhs.body && lhs.headers.elementsEqual(rhs.headers) { $0 == $1 }
    }

    /// `{"id", "tenant", "type", "timestamp", "data"}` (data as `/events` serves it), signed with
    /// HMAC-SHA256(secret, "<timestamp>.<body>") at `now`.
    public init(event: StoredTenantEvent, tenant: TenantName, secret: [UInt8], now: Date) {
        let timestamp = String(Int64(now.timeIntervalSince1970))
        let body = #"{"id":"\#(event.id)","tenant":"\#(tenant.rawValue)","type":"\#(event.type)","timestamp":\#(Int64(event.at.timeIntervalSince1970)),"data":\#(event.data)}"#
        self.body = Array(body.utf8)
        headers = [
            ("content-type", "application/json"), ("user-agent", "wahost-webhooks/1"), ("x-wahost-event", event.type),
            ("x-wahost-delivery", String(event.id)), ("x-wahost-timestamp", timestamp),
            ("x-wahost-signature", "sha256=" + Self.signature(secret: secret, timestamp: timestamp, body: self.body)),
        ]
    }

    /// Hex HMAC-SHA256 of `"<timestamp>.<body>"` under `secret`.
    public static func signature(secret: [UInt8], timestamp: String, body: [UInt8]) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Array((timestamp + ".").utf8) + body, using: SymmetricKey(data: secret))
        return mac.map { String(format: "%02x", $0) }.joined()
    }
}
