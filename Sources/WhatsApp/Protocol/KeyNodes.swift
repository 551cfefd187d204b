import WABinary

/// The key parts that prekey uploads and bundle answers share: `<registration>`, `<key>` and `<skey>`, ids as
/// big-endian bytes (docs/protocol-notes.md#prekeys). Built and read here only, for the client and the server side.
package enum KeyNodes {
    /// `<registration>`: the registration id in 4 bytes.
    package static func registration(_ id: UInt32) -> Node { Node(tag: "registration", bytes: bigEndian(id, bytes: 4)) }

    /// `<key>`: a one-time prekey's 3-byte id and public key.
    package static func key(id: UInt32, publicKey: [UInt8]) -> Node {
        Node(tag: "key", children: [Node(tag: "id", bytes: bigEndian(id, bytes: 3)), Node(tag: "value", bytes: publicKey)])
    }

    /// `<skey>`: the signed prekey's 3-byte id, public key and signature.
    package static func signedKey(id: UInt32, publicKey: [UInt8], signature: [UInt8]) -> Node {
        Node(
            tag: "skey",
            children: [
                Node(tag: "id", bytes: bigEndian(id, bytes: 3)), Node(tag: "value", bytes: publicKey), Node(tag: "signature", bytes: signature),
            ])
    }

    /// The registration id under `parent`.
    package static func readRegistration(in parent: Node, context: String) throws(StanzaError) -> UInt32 {
        number(try bytes(parent.child("registration"), "registration", count: 4, context: context))
    }

    /// A `<key>`'s id and public key.
    package static func readKey(_ node: Node, context: String) throws(StanzaError) -> (id: UInt32, publicKey: [UInt8]) {
        (number(try bytes(node.child("id"), "id", count: 3, context: context)), try bytes(node.child("value"), "value", count: 32, context: context))
    }

    /// The `<skey>` under `parent`: id, public key and signature (not verified here).
    package static func readSignedKey(in parent: Node, context: String) throws(StanzaError) -> (id: UInt32, publicKey: [UInt8], signature: [UInt8]) {
        guard let skey = parent.child("skey") else { throw StanzaError("\(context): no <skey>") }
        return (
            number(try bytes(skey.child("id"), "skey id", count: 3, context: context)),
            try bytes(skey.child("value"), "skey value", count: 32, context: context),
            try bytes(skey.child("signature"), "skey signature", count: 64, context: context)
        )
    }

    /// The content of `node`, which must be exactly `count` bytes.
    package static func bytes(_ node: Node?, _ name: String, count: Int, context: String) throws(StanzaError) -> [UInt8] {
        guard let value = node?.contentBytes, value.count == count else { throw StanzaError("\(context): <\(name)> must be \(count) bytes") }
        return value
    }

    /// `value` as `bytes` big-endian bytes.
    package static func bigEndian(_ value: UInt32, bytes: Int) -> [UInt8] {
        (0..<bytes).reversed().map { UInt8(truncatingIfNeeded: value >> (8 * UInt32($0))) }
    }

    /// Big-endian bytes as a number.
    package static func number(_ bytes: [UInt8]) -> UInt32 { bytes.reduce(0) { $0 << 8 | UInt32($1) } }
}
