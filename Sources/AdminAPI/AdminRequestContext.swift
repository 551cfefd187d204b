import Hummingbird
import NIOCore

/// The request context of every wahost route: the core context plus the client's address (for lockout and audit).
public struct AdminRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The peer's socket address, when the transport has one.
    public let remoteAddress: SocketAddress?
    /// The client's IP address as text, or `unknown`: the peer's, or the one a trusted proxy forwarded (``TrustedProxyMiddleware``).
    var clientAddress: String
    /// The node that forwarded this request, once its signature checked out (``ForwardedRequestVerifier``); nil otherwise.
    var forwardedBy: String?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
        clientAddress = remoteAddress?.ipAddress ?? "unknown"
    }

    /// JSON bodies are small; anything larger is refused with 413.
    public var maxUploadSize: Int { Self.maximumBody }
    /// The body limit of every route but `messages`.
    static let maximumBody = 64 * 1024
}
