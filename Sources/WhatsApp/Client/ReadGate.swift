import Synchronization

/// Lets a connection's end or deadline stop its read loop while it waits for the socket (a peer gone mid-frame
/// never closes it), but never while it handles a frame: the loop stops at its next wait instead.
final class ReadGate: Sendable {
    private struct State {
        var stopped = false
        var waiting = false
        var reason: DisconnectReason?
        var reader: Task<DisconnectReason, Never>?
    }

    private let state = Mutex(State())

    /// Why the reads were stopped by a deadline or a disconnect, if one gave a reason.
    var reason: DisconnectReason? { state.withLock { $0.reason } }

    /// The task running the read loop; cancelled by `stop` while it waits.
    func attach(_ reader: Task<DisconnectReason, Never>) {
        let cancel = state.withLock { state -> Bool in
            state.reader = reader
            return state.stopped && state.waiting
        }
        if cancel { reader.cancel() }
    }

    /// The next frame from `frames`, or nil once stopped (before or during the wait).
    func next(from frames: inout FrameReader) async throws -> [UInt8]? {
        let go = state.withLock { state -> Bool in
            state.waiting = !state.stopped
            return !state.stopped
        }
        guard go else { return nil }
        let frame = try await frames.next()
        let stopped = state.withLock { state -> Bool in
            state.waiting = false
            return state.stopped
        }
        return stopped ? nil : frame
    }

    /// Stops the reads; `reason` (the first one given) says why, when no decision of the connection does.
    func stop(_ reason: DisconnectReason? = nil) {
        let reader = state.withLock { state -> Task<DisconnectReason, Never>? in
            if state.reason == nil { state.reason = reason }
            state.stopped = true
            return state.waiting ? state.reader : nil
        }
        reader?.cancel()
    }
}
