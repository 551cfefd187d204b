import Foundation
import Tenancy

/// Where a tenant's session is in its life (docs/protocol-notes.md#session-lifecycle).
public enum SessionState: String, Sendable, Codable, CaseIterable {
    /// Not connected and not trying to be.
    case stopped
    /// Connecting or logging in.
    case connecting
    /// Connected unpaired, showing a QR code or waiting for a link code.
    case pairing
    /// Logged in; the session is usable.
    case connected
    /// Waiting to reconnect after a retryable drop.
    case reconnecting
    /// Unlinked (logout, device removed, 401/403/406); credentials are wiped.
    case loggedOut = "logged_out"
    /// Another connection took the session over; stays down until an operator restarts it.
    case replaced
    /// Stopped after an error that retrying will not fix (e.g. client outdated, banned).
    case failed

    /// True for states that only an operator or a new pairing leaves.
    public var isTerminal: Bool { self == .loggedOut || self == .replaced || self == .failed }
}

/// How a pairing is being done.
public enum PairingMethod: String, Sendable, Codable {
    /// The phone scans a QR code.
    case qr
    /// The user types a code on the phone.
    case code
}

/// A snapshot of one tenant's session, as the API and dashboard show it.
public struct SessionStatus: Sendable, Equatable {
    /// The tenant.
    public var tenant: TenantName
    /// The current state.
    public var state: SessionState
    /// The account JID once paired.
    public var me: String?
    /// The QR string to show while QR pairing.
    public var qr: String?
    /// When the current QR string stops working.
    public var qrExpiresAt: Date?
    /// How the current pairing is being done, if pairing.
    public var pairingMethod: PairingMethod?
    /// The last error, if any; never contains secrets.
    public var lastError: String?
    /// The node that runs the session, if any node does.
    public var ownerNode: String?
    /// When the owner last renewed its lease.
    public var lastHeartbeat: Date?

    public init(
        tenant: TenantName, state: SessionState, me: String? = nil, qr: String? = nil, qrExpiresAt: Date? = nil,
        pairingMethod: PairingMethod? = nil, lastError: String? = nil, ownerNode: String? = nil, lastHeartbeat: Date? = nil
    ) {
        self.tenant = tenant
        self.state = state
        self.me = me
        self.qr = qr
        self.qrExpiresAt = qrExpiresAt
        self.pairingMethod = pairingMethod
        self.lastError = lastError
        self.ownerNode = ownerNode
        self.lastHeartbeat = lastHeartbeat
    }

    /// True while logged in.
    public var connected: Bool { state == .connected }
}

/// A group the tenant's account is in.
public struct SessionGroup: Sendable, Hashable {
    /// The group JID (`…@g.us`).
    public var id: String
    /// The group's name.
    public var subject: String
    /// Member JIDs.
    public var participants: [String]

    public init(id: String, subject: String, participants: [String]) {
        self.id = id
        self.subject = subject
        self.participants = participants
    }
}
