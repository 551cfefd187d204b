import NIOSSL

/// Where and how a client connects; every value has WhatsApp's production default.
public struct WhatsAppClientConfiguration: Sendable {
    /// WhatsApp's WebSocket endpoint.
    public static let defaultURL = "wss://web.whatsapp.com/ws/chat"
    /// WhatsApp's certificate-chain root public key (docs/protocol-notes.md#noise-certificate-chain).
    public static let defaultRootPublicKey: [UInt8] = hexBytes("142375574d0a587166aae71ebe516437c4a28b73e3695c6ce1f7f9545da8ee6b")

    /// `wss://…` (or `ws://` on loopback, for the simulator).
    public var url: String
    /// TLS for `wss://` URLs: trust roots parsed once and shared by every connection (`WhatsAppTLS`).
    public var tlsConfiguration: TLSConfiguration
    /// The `Origin` header of the upgrade request.
    public var origin: String
    /// The root key the server's certificate chain must chain to.
    public var rootPublicKey: [UInt8]
    /// The announced client version.
    public var version: WhatsAppVersion
    /// The name the phone shows for this linked device.
    public var deviceName: String
    /// Pings are sent at a random interval in this range.
    public var keepaliveInterval: ClosedRange<Duration>
    /// A ping without an answer within this time ends the connection (`keepaliveTimeout`).
    public var keepaliveDeadline: Duration
    /// The TCP connection must be up within this time (NIO's connect timeout, over every address tried).
    public var connectTimeout: Duration
    /// Once connected, the TLS handshake and the WebSocket upgrade must be done within this time; then the socket closes.
    public var upgradeTimeout: Duration
    /// The server must answer the ClientHello within this time.
    public var handshakeTimeout: Duration
    /// Once the client ends a connection, the socket's close may take this long; then the reads stop regardless.
    public var closeTimeout: Duration
    /// Every IQ the client sends fails with a timeout after this long.
    public var requestTimeout: Duration
    /// Where keepalive, deadlines and QR rotation are scheduled.
    public var timers: ClientTimers

    public init(
        url: String = defaultURL, tlsConfiguration: TLSConfiguration = WhatsAppTLS.system, origin: String = "https://web.whatsapp.com",
        rootPublicKey: [UInt8] = defaultRootPublicKey,
        version: WhatsAppVersion = .default, deviceName: String = ClientPayloads.defaultDeviceName,
        keepaliveInterval: ClosedRange<Duration> = .seconds(20) ... .seconds(30), keepaliveDeadline: Duration = .seconds(10),
        connectTimeout: Duration = .seconds(10), upgradeTimeout: Duration = .seconds(20),
        handshakeTimeout: Duration = .seconds(20), closeTimeout: Duration = .seconds(2), requestTimeout: Duration = .seconds(60),
        timers: ClientTimers = .eventLoop
    ) {
        self.timers = timers
        self.url = url
        self.tlsConfiguration = tlsConfiguration
        self.origin = origin
        self.rootPublicKey = rootPublicKey
        self.version = version
        self.deviceName = deviceName
        self.keepaliveInterval = keepaliveInterval
        self.keepaliveDeadline = keepaliveDeadline
        self.connectTimeout = connectTimeout
        self.upgradeTimeout = upgradeTimeout
        self.handshakeTimeout = handshakeTimeout
        self.closeTimeout = closeTimeout
        self.requestTimeout = requestTimeout
    }
}

/// Decodes lowercase or uppercase hex; the caller passes constants, so bad input yields an empty array.
func hexBytes(_ text: String) -> [UInt8] {
    decodeHex(text) ?? []
}

/// Decodes lowercase or uppercase hex; nil on any non-hex character or an odd length.
public func decodeHex(_ text: String) -> [UInt8]? {
    let digits = Array(text.utf8)
    guard digits.count.isMultiple(of: 2) else { return nil }
    var bytes: [UInt8] = []
    bytes.reserveCapacity(digits.count / 2)
    for index in stride(from: 0, to: digits.count, by: 2) {
        guard let high = hexValue(digits[index]), let low = hexValue(digits[index + 1]) else { return nil }
        bytes.append(high << 4 | low)
    }
    return bytes
}

private func hexValue(_ character: UInt8) -> UInt8? {
    switch character {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): character - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): character - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): character - UInt8(ascii: "A") + 10
    default: nil
    }
}
