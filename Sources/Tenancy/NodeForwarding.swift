import Crypto
import Foundation

/// What a forwarding node signs about a request it passes to the session's owner.
public struct ForwardedRequestFacts: Sendable, Equatable {
    /// The signature scheme; part of what is signed.
    public static let version = "v1"

    /// Unix seconds when the forwarder signed.
    public var time: Int64
    /// The forwarding node's id.
    public var nodeID: String
    /// The HTTP method, e.g. `POST`.
    public var method: String
    /// Path and query as the client sent them.
    public var target: String
    /// The request body's bytes (empty when there is none).
    public var body: [UInt8]
    /// The client's address as the forwarding node saw it.
    public var clientAddress: String

    public init(time: Int64, nodeID: String, method: String, target: String, body: [UInt8], clientAddress: String) {
        self.time = time
        self.nodeID = nodeID
        self.method = method
        self.target = target
        self.body = body
        self.clientAddress = clientAddress
    }

    /// The signed text: version, time, node, method, target, body digest and client, one per line (none can hold a newline).
    var canonical: String {
        let digest = SHA256.hash(data: body).map { String(format: "%02x", $0) }.joined()
        return [Self.version, String(time), nodeID, method, target, digest, clientAddress].joined(separator: "\n")
    }
}

/// The key nodes sign forwarded requests with, derived from the master key (purpose `wahost/node-forwarding/v1`).
public struct NodeForwardingKey: Sendable {
    /// A signature older or newer than this (against the receiver's clock) is refused.
    public static let allowedSkew: Int64 = 30

    private let key: SymmetricKey

    public init(masterKey: MasterKey) {
        key = masterKey.clusterKey(purpose: .nodeForwarding)
    }

    /// HMAC-SHA256 of the facts, hex.
    public func signature(of facts: ForwardedRequestFacts) -> String {
        HMAC<SHA256>.authenticationCode(for: Array(facts.canonical.utf8), using: key).map { String(format: "%02x", $0) }.joined()
    }

    /// True when `signature` is the facts' HMAC (compared in constant time) and their time is within ``allowedSkew`` of `now`.
    public func verify(_ signature: String, of facts: ForwardedRequestFacts, now: Date) -> Bool {
        guard abs(Int64(now.timeIntervalSince1970.rounded(.down)) - facts.time) <= Self.allowedSkew else { return false }
        let expected = Array(self.signature(of: facts).utf8)
        let presented = Array(signature.utf8)
        guard presented.count == expected.count else { return false }
        // Every byte is compared whatever the first difference: the time taken says nothing about the key.
        var difference: UInt8 = 0
        for (left, right) in zip(expected, presented) { difference |= left ^ right }
        return difference == 0
    }
}
