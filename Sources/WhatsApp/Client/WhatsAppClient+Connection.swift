import Foundation
import NIOWebSocket
import WABinary
import WSClient

extension WhatsAppClient {
    /// State of the live connection.
    struct Connection {
        /// Which connection of this client it is; timers that fire late check it.
        var number: UInt64
        var outgoing: AsyncStream<OutgoingFrame>.Continuation
        var writer: NoiseTransport
        /// The connection's protocol decisions (`ConnectionMachine`); the actor does the I/O.
        var machine = ConnectionMachine()
        /// The continuations of our requests in the machine's correlation table.
        var pending: [String: PendingRequest] = [:]
        var pairing: PairingSession?
        var keepalive: ClientTimer?
        /// Stops the read loop's wait for the socket (`ReadGate`).
        var reads: ReadGate
        /// Armed when the connection's end is decided: the reads stop then even if the peer never closes.
        var closeDeadline: ClientTimer?
        /// The prekey check or upload in flight (one at a time); dropped when it ends, and its task's memory with it.
        var preKeyCheck: (number: UInt64, task: Task<Void, Never>)?

        /// Fails every request still waiting for an answer (the connection is ending) and empties the table.
        mutating func failPendingRequests() {
            let waiting = pending
            pending = [:]
            for request in waiting.values { request.resume(with: .failure(WhatsAppClientError.disconnected)) }
        }

        /// Cancels the prekey task, if one runs, and waits for it to end.
        func joinPreKeyTask() async {
            guard let task = preKeyCheck?.task else { return }
            task.cancel()
            await task.value
        }
    }

    /// A request waiting for its answer, and the timer that fails it when the answer is late.
    struct PendingRequest {
        var continuation: CheckedContinuation<Node, any Error>
        var deadline: ClientTimer

        func resume(with result: Result<Node, any Error>) {
            deadline.cancel()
            continuation.resume(with: result)
        }
    }
}

/// A value set once by the connection handler and read after it returns.
final class ResultBox: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: DisconnectReason?
    func set(_ value: DisconnectReason) { lock.withLock { stored = value } }
    var value: DisconnectReason? { lock.withLock { stored } }
}
