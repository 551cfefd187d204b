import AsyncHTTPClient
import Foundation
import HTTPTypes
import NIOCore
import Tenancy

/// How this node forwards requests for sessions other nodes run, and checks the requests other nodes forward to it.
public struct NodeForwarding: Sendable {
    /// This node's id, sent as `x-wahost-forwarded-by`.
    public let nodeID: String
    /// The cluster's signing key (derived from the master key).
    public let key: NodeForwardingKey

    public init(nodeID: String, key: NodeForwardingKey) {
        self.nodeID = nodeID
        self.key = key
    }

    /// The owner must send the response head within this time (the body may stream on: `/events`).
    static let answerTimeout: TimeAmount = .seconds(60)

    /// One client for the process: it keeps a pool of connections per owner node. Never shut down (it lives as long as the process).
    static let client: HTTPClient = {
        var configuration = HTTPClient.Configuration(
            timeout: .init(connect: .seconds(3), read: .seconds(60)), connectionPool: .init(idleTimeout: .seconds(60)))
        configuration.redirectConfiguration = .disallow
        configuration.httpVersion = .http1Only
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()

    /// Headers that belong to one connection, not to the request or answer (RFC 9110 §7.6.1), plus those re-computed.
    static func isHopByHop(_ name: HTTPField.Name, connectionTokens: Set<String>) -> Bool {
        hopByHop.contains(name.canonicalName) || connectionTokens.contains(name.canonicalName)
    }

    private static let hopByHop: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding",
        "upgrade", "host", "content-length",
    ]

    /// The header names a `Connection` header lists (they are hop-by-hop too).
    static func connectionTokens(_ fields: HTTPFields) -> Set<String> {
        Set(fields[values: .connection].flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces).lowercased() })
    }
}

extension HTTPField.Name {
    /// The forwarding node's id.
    static let wahostForwardedBy = HTTPField.Name("x-wahost-forwarded-by")!
    /// Unix seconds when the forwarder signed.
    static let wahostForwardTime = HTTPField.Name("x-wahost-forward-time")!
    /// The client's address as the forwarding node saw it.
    static let wahostForwardClient = HTTPField.Name("x-wahost-forward-client")!
    /// HMAC-SHA256 over the signed facts (``ForwardedRequestFacts``), hex.
    static let wahostForwardSignature = HTTPField.Name("x-wahost-forward-signature")!
    /// On a forwarded answer: the node that served it.
    static let wahostServedBy = HTTPField.Name("x-wahost-served-by")!

    /// Every header of the node-to-node protocol a client could send.
    static let wahostForwarding: [HTTPField.Name] = [.wahostForwardedBy, .wahostForwardTime, .wahostForwardClient, .wahostForwardSignature]
}
