import Crypto
import Foundation
import WahostBasics

/// The rules of WhatsApp one-time codes: lifetime, wrong tries, and how often a tenant may ask for one.
public struct WhatsAppCodePolicy: Sendable {
    /// How long a code is accepted.
    public var lifetime: Duration
    /// Wrong codes tried before the live code is void.
    public var maximumWrongTries: Int
    /// The least time between two requests of one tenant.
    public var minimumInterval: Duration
    /// The window of ``maximumPerWindow``.
    public var window: Duration
    /// Requests allowed within ``window``.
    public var maximumPerWindow: Int

    public init(lifetime: Duration, maximumWrongTries: Int, minimumInterval: Duration, window: Duration, maximumPerWindow: Int) {
        self.lifetime = lifetime
        self.maximumWrongTries = maximumWrongTries
        self.minimumInterval = minimumInterval
        self.window = window
        self.maximumPerWindow = maximumPerWindow
    }

    /// Nil if a request at `now` is allowed after the earlier `requests` (those within the window), else when the next one is.
    public func nextAllowed(after requests: [Date], now: Date) -> Date? {
        let recent = requests.filter { $0 > now.addingTimeInterval(-window.timeInterval) }.sorted()
        var next: Date?
        if let last = recent.last, now < last.addingTimeInterval(minimumInterval.timeInterval) {
            next = last.addingTimeInterval(minimumInterval.timeInterval)
        }
        if recent.count >= maximumPerWindow {
            let freed = recent[recent.count - maximumPerWindow].addingTimeInterval(window.timeInterval)
            next = max(next ?? freed, freed)
        }
        return next
    }

    /// 5 minutes, 5 wrong tries, one request per 30 s and 10 per hour.
    public static let standard = WhatsAppCodePolicy(
        lifetime: .seconds(300), maximumWrongTries: 5, minimumInterval: .seconds(30), window: .seconds(3600), maximumPerWindow: 10)
}

/// A code just issued: the digits to send (never stored) and where it goes.
public struct IssuedWhatsAppCode: Sendable {
    /// Six digits.
    public let code: String
    /// The stored hash, to void this code if it cannot be delivered.
    public let hash: [UInt8]
    /// When it stops being accepted.
    public let expiresAt: Date
    /// The tenant's `mfa_number`, or nil: the code goes to the tenant's own account.
    public let mfaNumber: String?

    package init(code: String, hash: [UInt8], expiresAt: Date, mfaNumber: String?) {
        self.code = code
        self.hash = hash
        self.expiresAt = expiresAt
        self.mfaNumber = mfaNumber
    }

    /// The message that carries the code: the tenant, the action it unlocks, its lifetime, what to do if unexpected.
    public func text(for tenant: TenantName, lifetime: Duration) -> String {
        let spaced = String(code.prefix(3)) + " " + String(code.suffix(3))
        let minutes = max(1, Int(lifetime.components.seconds / 60))
        return "wahost: \(spaced) is your code for tenant \(tenant). It unlocks QR pairing and logout. It expires in \(minutes) minutes. "
            + "If you did not ask for it, rotate your admin token."
    }
}

/// Pure helpers of WhatsApp one-time codes.
public enum WhatsAppCode {
    /// Six uniformly random digits from the CSPRNG.
    package static func generate() -> String {
        // 4,294,000,000 is the largest multiple of 10^6 below 2^32: rejecting above it keeps every code equally likely.
        while true {
            let value = SecureRandom.bytes(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            if value < 4_294_000_000 { return String(format: "%06u", value % 1_000_000) }
        }
    }

    /// The keyed hash stored for a code: HMAC-SHA256 over tenant, issue time (ms) and code.
    static func hash(_ code: String, tenant: TenantName, issuedAt: Date, key: SymmetricKey) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: hashedInput(code, tenant: tenant, issuedAt: issuedAt), using: key))
    }

    /// True if `code` is the one `stored` was made from (constant-time).
    static func matches(_ code: String, _ stored: StoredWhatsAppCode, tenant: TenantName, key: SymmetricKey) -> Bool {
        HMAC<SHA256>.isValidAuthenticationCode(stored.hash, authenticating: hashedInput(code, tenant: tenant, issuedAt: stored.issuedAt), using: key)
    }

    private static func hashedInput(_ code: String, tenant: TenantName, issuedAt: Date) -> [UInt8] {
        let milliseconds = Int64((issuedAt.timeIntervalSince1970 * 1000).rounded(.down))
        return Array("whatsapp-code\u{0}\(tenant.rawValue)\u{0}\(milliseconds)\u{0}\(code)".utf8)
    }

    /// A phone number for display: `+`, the first digit, bullets, the last four (`+1•••••••4567`).
    public static func masked(_ digits: String) -> String {
        guard digits.count > 5 else { return "+" + String(repeating: "•", count: 7) }
        return "+" + String(digits.prefix(1)) + String(repeating: "•", count: 7) + String(digits.suffix(4))
    }
}
