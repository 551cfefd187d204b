import NIOCore
import NIOPosix

/// One-shot timers on NIO's event loops (the group the WebSocket connections use).
///
/// Every session keeps a keepalive timer and a deadline per request. As entries in an event loop's timer heap they
/// cost nothing until they fire; a sleeping task per timer costs a dispatch timer and a thread wake-up instead
/// (docs/benchmarks.md, idle CPU).
enum EventLoopTimer {
    /// Runs `body` on an event loop after `delay`, unless the returned handle is cancelled first.
    static func after(_ delay: Duration, _ body: @escaping @Sendable () -> Void) -> Scheduled<Void> {
        MultiThreadedEventLoopGroup.singleton.any().scheduleTask(in: TimeAmount(delay), body)
    }
}
