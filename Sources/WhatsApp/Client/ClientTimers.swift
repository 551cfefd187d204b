import NIOCore
import NIOPosix

/// A scheduled one-shot timer; cancelling it after it fired does nothing.
public struct ClientTimer: Sendable {
    private let cancelTimer: @Sendable () -> Void

    public init(cancel: @escaping @Sendable () -> Void) { cancelTimer = cancel }

    /// Stops the timer if it has not fired yet.
    public func cancel() { cancelTimer() }
}

/// Where the client's timers run: keepalive pings, handshake and request deadlines, QR rotation. Production uses
/// NIO's event loops; tests inject timers they fire by hand.
public struct ClientTimers: Sendable {
    /// Runs `body` after the delay, unless the returned timer is cancelled first.
    public let schedule: @Sendable (Duration, @escaping @Sendable () -> Void) -> ClientTimer

    public init(schedule: @escaping @Sendable (Duration, @escaping @Sendable () -> Void) -> ClientTimer) {
        self.schedule = schedule
    }

    /// Timers on NIO's event loops (the group the WebSocket connections use). Every session keeps a keepalive timer
    /// and a deadline per request; as entries in an event loop's timer heap they cost nothing until they fire, where
    /// a sleeping task per timer costs a dispatch timer and a thread wake-up (docs/benchmarks.md, idle CPU).
    public static let eventLoop = ClientTimers { delay, body in
        let scheduled = MultiThreadedEventLoopGroup.singleton.any().scheduleTask(in: TimeAmount(delay), body)
        return ClientTimer { scheduled.cancel() }
    }
}
