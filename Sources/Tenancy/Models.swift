import Foundation

/// A tenant: the owner of one WhatsApp session and its admin token.
public struct Tenant: Hashable, Sendable, Codable {
    /// The tenant's unique name.
    public var name: TenantName
    /// When the tenant was created.
    public var createdAt: Date
    /// Whether state-changing session calls need a TOTP code (`x-otp`).
    public var mfaEnabled: Bool
    /// Random id of this tenant (not of its name), mixed into its credential keys; nil for tenants made before it existed.
    public var instanceID: String?
    /// Where WhatsApp one-time codes go (digits, country code first); nil: to the tenant's own account.
    public var mfaNumber: String?

    public init(name: TenantName, createdAt: Date, mfaEnabled: Bool, instanceID: String? = nil, mfaNumber: String? = nil) {
        self.name = name
        self.createdAt = createdAt
        self.mfaEnabled = mfaEnabled
        self.instanceID = instanceID
        self.mfaNumber = mfaNumber
    }

    /// A fresh random instance id: 128 bits, hex.
    public static func newInstanceID() -> String { SecureRandom.bytes(16).map { String(format: "%02x", $0) }.joined() }
}

/// An OTP secret as stored: sealed with the tenant's OTP key, plus the last time step that was accepted.
public struct StoredOTPSecret: Hashable, Sendable {
    /// AES-GCM combined box (nonce, ciphertext, tag) of the raw secret.
    public var sealedSecret: [UInt8]
    /// The last accepted TOTP time step; a code for this step or an earlier one is refused.
    public var lastAcceptedStep: Int64?

    public init(sealedSecret: [UInt8], lastAcceptedStep: Int64?) {
        self.sealedSecret = sealedSecret
        self.lastAcceptedStep = lastAcceptedStep
    }
}

/// A one-time code sent on WhatsApp, as stored: its keyed hash, never the code.
public struct StoredWhatsAppCode: Hashable, Sendable {
    /// HMAC-SHA256 of the code under the tenant's code key, bound to the tenant and the issue time.
    public var hash: [UInt8]
    /// When it was issued (part of the hashed input).
    public var issuedAt: Date
    /// It is refused from this instant on.
    public var expiresAt: Date
    /// Wrong codes tried while it was live.
    public var wrongTries: Int

    public init(hash: [UInt8], issuedAt: Date, expiresAt: Date, wrongTries: Int = 0) {
        self.hash = hash
        self.issuedAt = issuedAt
        self.expiresAt = expiresAt
        self.wrongTries = wrongTries
    }
}

/// Whether a tenant's session should be running; survives restarts.
public enum DesiredSessionState: String, Sendable, Codable, CaseIterable {
    /// Connect (or pair) and keep connected.
    case running
    /// Keep disconnected.
    case stopped
}

/// A lease row: which node owns a tenant's session, until when.
public struct SessionLease: Hashable, Sendable {
    /// The tenant whose session this is.
    public var tenant: TenantName
    /// The owning node's id.
    public var nodeID: String
    /// Increases on every change of owner; a holder with an older generation has lost the lease.
    public var generation: Int64
    /// The lease is free for takeover after this instant.
    public var expiresAt: Date
    /// When the owner last renewed the lease.
    public var lastBeatAt: Date
    /// The session state the owner last reported.
    public var state: String
    /// The last error the owner reported, if any; never contains secrets.
    public var lastError: String?

    public init(
        tenant: TenantName, nodeID: String, generation: Int64, expiresAt: Date, lastBeatAt: Date, state: String,
        lastError: String?
    ) {
        self.tenant = tenant
        self.nodeID = nodeID
        self.generation = generation
        self.expiresAt = expiresAt
        self.lastBeatAt = lastBeatAt
        self.state = state
        self.lastError = lastError
    }
}

/// One renewal in a batched heartbeat.
public struct LeaseBeat: Hashable, Sendable {
    /// The tenant whose lease is renewed.
    public var tenant: TenantName
    /// The generation the node believes it holds.
    public var generation: Int64
    /// The current session state to record.
    public var state: String
    /// The current error to record, if any.
    public var lastError: String?

    public init(tenant: TenantName, generation: Int64, state: String, lastError: String?) {
        self.tenant = tenant
        self.generation = generation
        self.state = state
        self.lastError = lastError
    }
}

/// One audit log entry: who did what to which tenant, when, from where. Never holds secrets.
public struct AuditEvent: Hashable, Sendable, Codable {
    /// When it happened.
    public var at: Date
    /// Who acted: `operator`, `tenant:<name>`, `cli`, `system` or `anonymous`.
    public var actor: String
    /// What was done, e.g. `tenant.create`, `token.rotate`, `auth.token_invalid`.
    public var action: String
    /// The tenant acted on, if any (kept as text so the entry outlives the tenant).
    public var tenant: String?
    /// The client address, if the action came over the network.
    public var clientAddress: String?
    /// A short detail without secrets.
    public var detail: String?

    public init(at: Date, actor: String, action: String, tenant: String?, clientAddress: String?, detail: String?) {
        self.at = at
        self.actor = actor
        self.action = action
        self.tenant = tenant
        self.clientAddress = clientAddress
        self.detail = detail
    }
}
