import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOTLS
import NIOWebSocket
@_spi(WSInternal) import WSCore

/// Opens the WhatsApp WebSocket with every step before the first frame bounded, then runs a handler on it.
///
/// swift-websocket's `WebSocketClient` awaits the upgrade with no deadline and keeps its socket to itself, so a server
/// that accepts the connection and never answers held a session in `connecting` for good (docs/design-notes.md,
/// "Bounded connect"). Here the TCP connect has NIO's connect timeout, and the TLS handshake and the upgrade share
/// `upgradeTimeout`, whose expiry closes the socket; a cancelled task closes it too. Once upgraded, the connection is
/// handed to the library's own frame handler (`WebSocketHandler`, its client path), so framing, masking, pings and the
/// close handshake are the library's.
struct WebSocketConnector {
    let url: String
    let origin: String
    let tlsConfiguration: TLSConfiguration
    let connectTimeout: Duration
    let upgradeTimeout: Duration
    let maxFrameSize: Int
    let closeTimeout: Duration
    let timers: ClientTimers
    let logger: Logger

    /// The context the frame handler passes to the connection's handler.
    struct Context: WebSocketContext {
        let logger: Logger
    }

    private enum UpgradeResult: Sendable {
        case websocket(NIOAsyncChannel<WebSocketFrame, WebSocketFrame>)
        case notUpgraded
    }

    /// Connects, upgrades and runs `handler` on the WebSocket until it returns; throws when a step fails or stalls.
    func run(_ attempt: ConnectAttempt, handler: @escaping WebSocketDataHandler<Context>) async throws {
        let webSocket = try await withTaskCancellationHandler { try await open(attempt) } onCancel: { attempt.abandon() }
        _ = try await WebSocketHandler.handle(
            type: .client,
            configuration: .init(extensions: [], autoPing: .disabled, closeTimeout: closeTimeout, validateUTF8: false, maxFrameSize: maxFrameSize),
            asyncChannel: webSocket, context: Context(logger: logger), handler: handler)
    }

    /// The upgraded WebSocket; a step that fails or stalls, or the attempt's end, closes the socket and throws.
    private func open(_ attempt: ConnectAttempt) async throws -> NIOAsyncChannel<WebSocketFrame, WebSocketFrame> {
        let endpoint = try Endpoint(url)
        let sslContext = try endpoint.secure ? NIOSSLContext(configuration: tlsConfiguration) : nil
        let requestHead = upgradeRequest(for: endpoint)
        let maxFrameSize = self.maxFrameSize
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(TimeAmount(connectTimeout))
            .channelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
        let channel: any Channel
        let upgrade: EventLoopFuture<UpgradeResult>
        do {
            (channel, upgrade) = try await bootstrap.connect(host: endpoint.host, port: endpoint.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let sslContext {
                        let tls = try NIOSSLClientHandler(context: sslContext, serverHostname: endpoint.host)
                        try channel.pipeline.syncOperations.addHandler(tls)
                        try channel.pipeline.syncOperations.addHandler(TLSHandshakeWatch(attempt: attempt))
                    }
                    let upgrade = try channel.pipeline.syncOperations.configureUpgradableHTTPClientPipeline(
                        configuration: Self.pipeline(requestHead: requestHead, maxFrameSize: maxFrameSize))
                    return (channel, upgrade)
                }
            }
        } catch ChannelError.connectTimeout {
            throw ConnectError("TCP connect to \(endpoint.host):\(endpoint.port) timed out after \(secondsText(connectTimeout))")
        }
        guard attempt.connected(channel, tls: sslContext != nil) else {
            try? await channel.close()
            throw ConnectError(attempt.endReason ?? "connection attempt ended")
        }
        let timeout = upgradeTimeout
        let deadline = timers.schedule(timeout) { attempt.expire(after: timeout) }
        let result: UpgradeResult
        do {
            result = try await upgrade.get()
        } catch {
            deadline.cancel()
            try? await channel.close()
            throw attempt.endReason.map { ConnectError($0) } ?? error
        }
        deadline.cancel()
        if let reason = attempt.upgraded() {
            try? await channel.close()
            throw ConnectError(reason)
        }
        guard case .websocket(let webSocket) = result else {
            try? await channel.close()
            throw ConnectError("websocket upgrade refused by \(endpoint.host):\(endpoint.port)")
        }
        return webSocket
    }

    /// `GET /ws/chat` with the upgrade's `Host` and `Origin`.
    private func upgradeRequest(for endpoint: Endpoint) -> HTTPRequestHead {
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: endpoint.hostHeader)
        headers.add(name: "Origin", value: origin)
        return HTTPRequestHead(version: .http1_1, method: .GET, uri: endpoint.path, headers: headers)
    }

    /// The HTTP client pipeline that sends the upgrade request once the socket is active and swaps in WebSocket framing.
    private static func pipeline(requestHead: HTTPRequestHead, maxFrameSize: Int) -> NIOUpgradableHTTPClientPipelineConfiguration<UpgradeResult> {
        let upgrader = NIOTypedWebSocketClientUpgrader<UpgradeResult>(maxFrameSize: maxFrameSize) { channel, _ in
            channel.eventLoop.makeCompletedFuture {
                .websocket(try NIOAsyncChannel<WebSocketFrame, WebSocketFrame>(wrappingChannelSynchronously: channel))
            }
        }
        let upgrade = NIOTypedHTTPClientUpgradeConfiguration(
            upgradeRequestHead: requestHead, upgraders: [upgrader],
            notUpgradingCompletionHandler: { channel in channel.eventLoop.makeSucceededFuture(.notUpgraded) })
        var configuration = NIOUpgradableHTTPClientPipelineConfiguration(upgradeConfiguration: upgrade)
        configuration.leftOverBytesStrategy = .forwardBytes
        return configuration
    }
}

/// Tells the attempt when the TLS handshake completed, so a deadline names the step that stalled.
private final class TLSHandshakeWatch: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    let attempt: ConnectAttempt

    init(attempt: ConnectAttempt) { self.attempt = attempt }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted? = event as? TLSUserEvent { attempt.tlsHandshakeCompleted() }
        context.fireUserInboundEventTriggered(event)
    }
}

/// Where a `ws://` or `wss://` URL points.
struct Endpoint: Sendable {
    let secure: Bool
    let host: String
    let port: Int
    /// The `Host` header: the host, with the port when the URL gives one.
    let hostHeader: String
    /// The path and query of the upgrade request.
    let path: String

    init(_ text: String) throws {
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased(), scheme == "ws" || scheme == "wss",
            let host = components.host, !host.isEmpty
        else { throw ConnectError("not a ws:// or wss:// URL: \(text)") }
        secure = scheme == "wss"
        self.host = host
        port = components.port ?? (secure ? 443 : 80)
        hostHeader = components.port.map { "\(host):\($0)" } ?? host
        let query = components.percentEncodedQuery.map { "?\($0)" } ?? ""
        path = (components.percentEncodedPath.isEmpty ? "/" : components.percentEncodedPath) + query
    }
}
