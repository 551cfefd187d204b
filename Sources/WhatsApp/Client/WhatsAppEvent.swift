/// What a client reports while it runs.
public enum WhatsAppEvent: Sendable, Equatable {
    /// A QR string to show for `expiresIn`; replaces the previous one.
    case qrCode(String, expiresIn: Duration)
    /// Pairing succeeded for this account JID; a restart (515) and login follow.
    case paired(jid: String)
    /// Logged in with stored credentials; the session is usable.
    case loggedIn(jid: String)
    /// The connection ended; `reason.disposition` says what to do.
    case disconnected(DisconnectReason)
}
