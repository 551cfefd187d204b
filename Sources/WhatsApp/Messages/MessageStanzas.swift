import Crypto
import Foundation
import WABinary

/// Builders for outgoing message stanzas.
public enum MessageStanzas {
    /// A new message id: `3EB0` and 16 random upper-case hex digits, the form WhatsApp Web uses.
    public static func newMessageID(using generator: inout some RandomNumberGenerator) -> String {
        let random = generator.next()
        return messageID(hexOf: (0..<8).map { UInt8(truncatingIfNeeded: random >> ($0 * 8)) })
    }

    /// A message id fixed by `seed` (an idempotency key): `3EB0` and 16 hex digits of SHA-256 over it.
    public static func messageID(derivedFrom seed: String) -> String {
        messageID(hexOf: SHA256.hash(data: Array(seed.utf8)).prefix(8))
    }

    /// `3EB0` and the upper-case hex digits of `bytes` (one random draw and no formatter: ids are made per message).
    private static func messageID(hexOf bytes: some Sequence<UInt8>) -> String {
        var id = "3EB0"
        for byte in bytes {
            for nibble in [byte >> 4, byte & 0x0F] { id.unicodeScalars.append(Unicode.Scalar(nibble < 10 ? 48 + nibble : 55 + nibble)) }
        }
        return id
    }

    /// A text message to `chat`, one payload per recipient device; the device identity goes along when any payload
    /// is a `pkmsg` (the receiver checks it before it accepts a new session).
    public static func fanOut(
        id: String, to chat: JID, payloads: [(device: JID, payload: EncryptedPayload)], groupPayload: EncryptedPayload? = nil,
        participantHash: String? = nil, deviceIdentity: [UInt8]?
    ) -> Node {
        var attributes: Attributes = ["id": .string(id), "to": .jid(chat), "type": "text"]
        if let participantHash { attributes.append(Attribute(key: "phash", value: .string(participantHash))) }
        var children: [Node] = []
        if !payloads.isEmpty {
            children.append(
                Node(
                    tag: "participants",
                    children: payloads.map { device, payload in
                        Node(tag: "to", attributes: ["jid": .jid(device)], children: [enc(payload)])
                    }))
        }
        if let groupPayload { children.append(enc(groupPayload)) }
        if let deviceIdentity, payloads.contains(where: { $0.payload.kind == .preKeyMessage }) {
            children.append(Node(tag: "device-identity", bytes: deviceIdentity))
        }
        return Node(tag: "message", attributes: attributes, children: children)
    }

    /// The participant hash of a group send: `2:` and base64 of the first 6 bytes of SHA-256 over the sorted device JIDs.
    public static func participantHash(_ devices: [JID]) -> String {
        let joined = devices.map(\.description).sorted().joined()
        return "2:" + Data(SHA256.hash(data: Array(joined.utf8)).prefix(6)).base64EncodedString()
    }

    private static func enc(_ payload: EncryptedPayload) -> Node {
        Node(tag: "enc", attributes: ["v": "2", "type": .string(payload.kind.rawValue)], bytes: payload.bytes)
    }
}
