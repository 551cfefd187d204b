import WABinary

/// Why a connection ended, and what the caller should do about it (docs/protocol-notes.md#login-failure, #stream-errors).
public enum DisconnectReason: Sendable, Equatable, CustomStringConvertible {
    /// `<stream:error code="515">`: expected after pairing; log in again at once.
    case restartRequired
    /// `<conflict type="replaced">`: another connection uses these credentials. Terminal: never reconnect by itself.
    case replaced
    /// Unlinked (`device_removed`, failure 401/403/406, our own logout). Terminal; credentials must be wiped.
    case loggedOut(code: Int?)
    /// `<failure reason="405">`: the announced version is too old. Terminal until the version is updated.
    case clientOutdated
    /// `<failure reason="402">`: temporarily banned for `expireSeconds`.
    case temporarilyBanned(expireSeconds: Int?)
    /// Any other `<failure>` the server does not want retried (400, 409, 415, 418, 501, …).
    case loginRejected(code: Int)
    /// The server is failing (failure 500/503, stream error 5xx); retry with backoff.
    case serviceUnavailable(code: Int)
    /// Another `<stream:error>`, e.g. `xml-not-well-formed`; retry with backoff.
    case streamError(code: Int?, condition: String)
    /// The server closed the stream or the socket; retry with backoff.
    case connectionClosed
    /// The socket failed (DNS, TCP, TLS, HTTP upgrade); retry with backoff.
    case networkError(String)
    /// No keepalive answer within the deadline; retry with backoff.
    case keepaliveTimeout
    /// The Noise handshake or certificate check failed; retry with backoff (a wrong root key will keep failing).
    case handshakeFailed(String)
    /// A QR pairing ran out of refs without a scan; stay idle until pairing is asked for again.
    case pairingTimedOut
    /// The caller asked to disconnect.
    case requested

    /// What the caller should do next.
    public enum Disposition: Sendable, Equatable {
        /// Reconnect immediately (login with the stored credentials).
        case reconnectNow
        /// Reconnect after an exponential backoff with jitter.
        case reconnectWithBackoff
        /// Stay disconnected until an operator acts.
        case stop
        /// Stay disconnected and wipe the stored credentials.
        case stopAndWipeCredentials
    }

    /// What the caller should do next.
    public var disposition: Disposition {
        switch self {
        case .restartRequired: .reconnectNow
        case .loggedOut: .stopAndWipeCredentials
        case .replaced, .clientOutdated, .temporarilyBanned, .loginRejected, .pairingTimedOut, .requested: .stop
        case .serviceUnavailable, .streamError, .connectionClosed, .networkError, .keepaliveTimeout, .handshakeFailed:
            .reconnectWithBackoff
        }
    }

    public var description: String {
        switch self {
        case .restartRequired: "restart required (515)"
        case .replaced: "replaced by another connection"
        case .loggedOut(let code): "logged out" + (code.map { " (\($0))" } ?? "")
        case .clientOutdated: "client version outdated (405)"
        case .temporarilyBanned(let expire): "temporarily banned" + (expire.map { " for \($0) s" } ?? "")
        case .loginRejected(let code): "login rejected (\(code))"
        case .serviceUnavailable(let code): "service unavailable (\(code))"
        case .streamError(let code, let condition): "stream error \(code.map(String.init) ?? "-") \(condition)"
        case .connectionClosed: "connection closed"
        case .networkError(let message): "network error: \(message)"
        case .keepaliveTimeout: "keepalive timed out"
        case .handshakeFailed(let message): "handshake failed: \(message)"
        case .pairingTimedOut: "pairing timed out"
        case .requested: "disconnect requested"
        }
    }

    /// Classifies a `<stream:error>` node (docs/protocol-notes.md#stream-errors).
    public static func fromStreamError(_ node: Node) -> DisconnectReason {
        let code = node.attributes["code"]?.string.flatMap { Int($0) }
        if let conflict = node.child("conflict") {
            switch conflict.attributes["type"]?.string {
            case "replaced": return .replaced
            case "device_removed": return .loggedOut(code: code ?? 401)
            default: break
            }
        }
        switch code {
        case 515: return .restartRequired
        case 401, 516: return .loggedOut(code: code)
        case let code? where code >= 500: return .serviceUnavailable(code: code)
        default: return .streamError(code: code, condition: node.children.first?.tag ?? "unknown")
        }
    }

    /// Classifies a `<failure>` sent instead of `<success>` (docs/protocol-notes.md#login-failure).
    public static func fromFailure(_ node: Node) -> DisconnectReason {
        let reason = node.attributes["reason"]?.string.flatMap { Int($0) } ?? 500
        switch reason {
        case 401, 403, 406: return .loggedOut(code: reason)
        case 402: return .temporarilyBanned(expireSeconds: node.attributes["expire"]?.string.flatMap { Int($0) })
        case 405: return .clientOutdated
        case 500, 503: return .serviceUnavailable(code: reason)
        default: return .loginRejected(code: reason)
        }
    }
}
