import Crypto
import Foundation

/// The 256-bit master key; every per-tenant data key is derived from it with HKDF-SHA256.
public struct MasterKey: Sendable {
    /// What a derived key is for; each purpose has its own HKDF salt so keys never repeat across uses.
    public enum Purpose: String, Sendable {
        /// Files under `auth/<tenant>/`.
        case credentials = "wahost/credentials/v1"
        /// The tenant's TOTP secret in the system database.
        case otpSecret = "wahost/otp-secret/v1"
        /// The tenant's Signal records (sessions, identities, sender keys) in the system database.
        case signalStore = "wahost/signal-store/v1"
        /// The keyed hash of the tenant's WhatsApp one-time codes.
        case whatsAppCode = "wahost/whatsapp-code/v1"
        /// The tenant's webhook signing secret in the system database.
        case webhookSecret = "wahost/webhook-secret/v1"
        /// The key dashboard CSRF tokens are derived with (HMAC over the sign-in's id); one for the whole deployment.
        case dashboardCSRF = "wahost/dashboard-csrf/v1"
        /// The key nodes of one cluster sign forwarded requests with (not per tenant).
        case nodeForwarding = "wahost/node-forwarding/v1"
    }

    private let key: SymmetricKey

    /// Wraps 32 raw key bytes; throws if there are not exactly 32.
    public init(bytes: [UInt8]) throws(MasterKeyError) {
        guard bytes.count == 32 else { throw MasterKeyError("master key must be 32 bytes, got \(bytes.count)") }
        self.key = SymmetricKey(data: bytes)
    }

    /// Parses the base64 form used by `WAHOST_MASTER_KEY`.
    public init(base64: String) throws(MasterKeyError) {
        guard let data = Data(base64Encoded: base64.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw MasterKeyError("master key is not valid base64")
        }
        try self.init(bytes: Array(data))
    }

    /// A fresh random key.
    public static func generate() -> MasterKey {
        // 32 bytes always succeeds.
        try! MasterKey(bytes: SecureRandom.bytes(32))
    }

    /// The key as base64 (for writing the key file).
    public var base64: String { key.withUnsafeBytes { Data($0).base64EncodedString() } }

    /// HKDF-SHA256(ikm: master key, salt: purpose, info: empty), 32 bytes: a key of the deployment, bound to no tenant.
    public func derivedKey(purpose: Purpose) -> SymmetricKey {
        // Tenant names are never empty, so this key differs from every tenant's key of the same purpose.
        HKDF<SHA256>.deriveKey(inputKeyMaterial: key, salt: Array(purpose.rawValue.utf8), info: [UInt8](), outputByteCount: 32)
    }

    /// HKDF-SHA256(ikm: master key, salt: purpose, info: tenant name), 32 bytes.
    public func derivedKey(for tenant: TenantName, purpose: Purpose, instanceID: String? = nil) -> SymmetricKey {
        // info = name, or name 0x00 instance id: a later tenant of the same name derives a different key.
        let info = instanceID.map { tenant.rawValue + "\u{0}" + $0 } ?? tenant.rawValue
        return HKDF<SHA256>.deriveKey(inputKeyMaterial: key, salt: Array(purpose.rawValue.utf8), info: Array(info.utf8), outputByteCount: 32)
    }

    /// HKDF-SHA256(ikm: master key, salt: purpose, info: `cluster`), 32 bytes: a key shared by every node, not by tenant.
    public func clusterKey(purpose: Purpose) -> SymmetricKey {
        // No tenant name contains a NUL, so this info never equals a tenant's.
        HKDF<SHA256>.deriveKey(inputKeyMaterial: key, salt: Array(purpose.rawValue.utf8), info: Array("\u{0}cluster".utf8), outputByteCount: 32)
    }
}

/// The master key could not be loaded or parsed.
public struct MasterKeyError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
