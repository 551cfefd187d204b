import NIOCore
import Synchronization

/// One connection attempt up to the WebSocket upgrade: which step it is in, and its socket, so a deadline or a stop
/// can close the socket whatever step waits (the first of upgrade, deadline and stop decides).
final class ConnectAttempt: Sendable {
    /// The step an attempt is in.
    enum Step: Sendable, Equatable {
        case tcpConnect, tlsHandshake, upgrade, upgraded
        /// Ended before the upgrade: why.
        case ended(String)
    }

    private struct State {
        var step: Step = .tcpConnect
        var channel: (any Channel)?
        /// The handshake can complete on the event loop before the connecting task records the connection.
        var tlsDone = false
    }

    private let state = Mutex(State())

    /// The step the attempt is in now.
    var step: Step { state.withLock { $0.step } }

    /// The TCP connection is up; false when the attempt already ended (the caller closes `channel` then).
    func connected(_ channel: any Channel, tls: Bool) -> Bool {
        state.withLock { state in
            guard case .tcpConnect = state.step else { return false }
            state.channel = channel
            state.step = tls && !state.tlsDone ? .tlsHandshake : .upgrade
            return true
        }
    }

    /// The TLS handshake completed; the upgrade request follows.
    func tlsHandshakeCompleted() {
        state.withLock { state in
            state.tlsDone = true
            if state.step == .tlsHandshake { state.step = .upgrade }
        }
    }

    /// The upgrade succeeded; the reason the attempt ended instead, if a deadline or stop came first.
    func upgraded() -> String? {
        state.withLock { state in
            if case .ended(let reason) = state.step { return reason }
            state.step = .upgraded
            state.channel = nil
            return nil
        }
    }

    /// Ends the attempt when `timeout` passed before the upgrade, naming the step that stalled; closes the socket.
    func expire(after timeout: Duration) {
        let reason: @Sendable (Step) -> String = { step in "\(step.name) timed out after \(secondsText(timeout))" }
        // Decided on the socket's event loop, after what it is doing: a TLS handshake completed there counts as done.
        guard let loop = state.withLock({ $0.channel?.eventLoop }) else { return end(reason) }
        loop.execute { self.end(reason) }
    }

    /// Ends the attempt before the upgrade because the caller stopped it; closes the socket.
    func abandon() {
        end { _ in "connection attempt stopped" }
    }

    /// Why the attempt ended before the upgrade, if it did.
    var endReason: String? {
        if case .ended(let reason) = step { return reason }
        return nil
    }

    private func end(_ reason: @Sendable (Step) -> String) {
        let channel = state.withLock { state -> (any Channel)? in
            switch state.step {
            case .upgraded, .ended: return nil
            default:
                state.step = .ended(reason(state.step))
                defer { state.channel = nil }
                return state.channel
            }
        }
        channel?.close(promise: nil)
    }
}

extension ConnectAttempt.Step {
    /// The step as an error message names it.
    var name: String {
        switch self {
        case .tcpConnect: "TCP connect"
        case .tlsHandshake: "TLS handshake"
        case .upgrade: "websocket upgrade"
        case .upgraded: "connection"
        case .ended: "connection attempt"
        }
    }
}

/// A connection attempt ended before its WebSocket was upgraded.
public struct ConnectError: Error, Sendable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// `20 s`, `1.5 s`: a duration as error messages give it.
func secondsText(_ duration: Duration) -> String {
    let parts = duration.components
    let seconds = Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    return seconds == seconds.rounded() ? "\(Int64(seconds)) s" : "\(seconds) s"
}
