import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// A loopback endpoint that accepts TCP connections (and with `tls` completes the TLS handshake) and never sends a
/// byte: a WhatsApp endpoint that hangs before the WebSocket upgrade. It records what each connection did, so a
/// test can see that the client sent its request and then closed the socket itself.
public final class SilentListener: Sendable {
    /// What the listener saw, over all its connections.
    public struct Observed: Sendable, Equatable {
        /// Connections accepted, and those open now.
        public var accepted = 0
        public var open = 0
        /// Connections the client closed (the listener never closes one before `stop`), and those `stop` closed.
        public var closedByClient = 0
        public var closedAtStop = 0
        /// Bytes received (after TLS, when it runs TLS), and the HTTP upgrade requests among them.
        public var bytesReceived = 0
        public var upgradeRequests = 0
    }

    /// The bound port on 127.0.0.1.
    public let port: Int
    private let server: any Channel
    private let record: Record

    private init(port: Int, server: any Channel, record: Record) {
        self.port = port
        self.server = server
        self.record = record
    }

    /// Listens on 127.0.0.1:`port` (0: any free port); with `tls` (a server configuration), runs TLS first.
    public static func start(port: Int = 0, tls: TLSConfiguration? = nil) async throws -> SilentListener {
        let record = Record()
        let context = try tls.map { try NIOSSLContext(configuration: $0) }
        let server = try await retryingBusyPort(port) { try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let context { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context)) }
                    try channel.pipeline.syncOperations.addHandler(Recorder(record: record))
                }
            }
            .bind(host: "127.0.0.1", port: port).get() }
        return SilentListener(port: server.localAddress?.port ?? 0, server: server, record: record)
    }

    /// A snapshot of what the listener saw.
    public var observed: Observed { record.state.withLock { $0.observed } }

    /// Stops listening and closes the connections still open.
    public func stop() async {
        try? await server.close()
        let open = record.state.withLock { state -> [any Channel] in
            state.stopping = true
            return state.channels
        }
        for channel in open { try? await channel.close() }
    }

    fileprivate final class Record: Sendable {
        struct State {
            var observed = Observed()
            var channels: [any Channel] = []
            var stopping = false
        }
        let state = Mutex(State())
    }

    /// Counts one connection's bytes and requests, and whether its client closed it.
    private final class Recorder: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let record: Record
        /// What arrived before the end of the first request head (a client sends one request, then waits).
        private var text = ""
        private var requestSeen = false

        init(record: Record) { self.record = record }

        func channelActive(context: ChannelHandlerContext) {
            let channel = context.channel
            record.state.withLock {
                $0.observed.accepted += 1
                $0.observed.open += 1
                $0.channels.append(channel)
            }
            context.fireChannelActive()
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            var request = false
            if !requestSeen {
                text += String(decoding: buffer.readableBytesView, as: UTF8.self)
                requestSeen = text.contains("\r\n\r\n")
                request = requestSeen && text.hasPrefix("GET ")
            }
            record.state.withLock {
                $0.observed.bytesReceived += buffer.readableBytes
                if request { $0.observed.upgradeRequests += 1 }
            }
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if case .inputClosed? = event as? ChannelEvent { context.close(promise: nil) }
            context.fireUserInboundEventTriggered(event)
        }

        func channelInactive(context: ChannelHandlerContext) {
            let channel = context.channel
            record.state.withLock {
                $0.observed.open -= 1
                if $0.stopping { $0.observed.closedAtStop += 1 } else { $0.observed.closedByClient += 1 }
                $0.channels.removeAll { $0 === channel }
            }
            context.fireChannelInactive()
        }
    }
}

/// Runs `listen`; on a fixed port (not 0) retries a failure for up to 10 s: a port just let go (a server replaced on
/// the same port) can be taken for a moment by another socket, such as a client's connection given it as its own.
func retryingBusyPort<T>(_ port: Int, isolation: isolated (any Actor)? = #isolation, _ listen: () async throws -> T) async throws -> T {
    let deadline = ContinuousClock.now + .seconds(port == 0 ? 0 : 10)
    while true {
        do { return try await listen() } catch {
            guard ContinuousClock.now < deadline else { throw error }
            try await Task.sleep(for: .milliseconds(100))
        }
    }
}
