// What only the server side of the protocol does with the companion's own stanzas and codes: the simulator's
// `pair-device` request (docs/protocol-notes.md#qr-pair-device), reading a scanned QR code back (#qr-code-text), and checking a prekey
// upload (#prekeys).

import Foundation
import WABinary
import WhatsApp

extension PairDeviceRequest {
    /// The request as the server sends it, for the simulator.
    public var node: Node {
        Node(
            tag: "iq",
            attributes: ["from": .jid(.whatsappServer), "type": "set", "id": .string(iqID), "xmlns": "md"],
            children: [Node(tag: "pair-device", children: refs.map { Node(tag: "ref", bytes: Array($0.utf8)) })]
        )
    }
}

extension PairingQRCode {
    /// Reads QR text back, as the simulator's phone does when it "scans" the code.
    ///
    /// The last four fields are fixed, so a ref is taken as everything before them even if it held a comma.
    public init(parsing text: String) throws(PairingError) {
        guard text.hasPrefix(Self.prefix) else { throw PairingError(.malformedQRCode, "missing URL prefix") }
        let fields = text.dropFirst(Self.prefix.count).split(separator: ",", omittingEmptySubsequences: false)
        guard fields.count >= 5 else { throw PairingError(.malformedQRCode, "fewer than 5 fields") }
        let ref = fields.dropLast(4).joined(separator: ",")
        let tail = Array(fields.suffix(4))
        guard !ref.isEmpty else { throw PairingError(.malformedQRCode, "empty ref") }
        guard let noise = Self.key(tail[0]), let identity = Self.key(tail[1]), let adv = Self.key(tail[2]) else {
            throw PairingError(.malformedQRCode, "a key is not base64 of 32 bytes")
        }
        guard !tail[3].isEmpty else { throw PairingError(.malformedQRCode, "empty platform id") }
        self.init(ref: ref, noisePublicKey: noise, identityPublicKey: identity, advSecretKey: adv, platformID: CompanionPlatformID(rawValue: String(tail[3])))
    }

    private static func key(_ field: Substring) -> [UInt8]? {
        guard let data = Data(base64Encoded: String(field)), data.count == 32 else { return nil }
        return Array(data)
    }
}

/// A parsed prekey upload, as the server (simulator) checks it.
public struct PreKeyUpload: Sendable, Equatable {
    /// The companion's registration id.
    public var registrationID: UInt32
    /// The companion's identity public key.
    public var identityPublicKey: [UInt8]
    /// The uploaded public prekeys by id.
    public var preKeys: [(id: UInt32, publicKey: [UInt8])]
    /// The signed prekey's id, public key and signature.
    public var signedPreKey: (id: UInt32, publicKey: [UInt8], signature: [UInt8])

    public static func == (lhs: PreKeyUpload, rhs: PreKeyUpload) -> Bool {
        lhs.registrationID == rhs.registrationID && lhs.identityPublicKey == rhs.identityPublicKey
            && lhs.preKeys.map(\.id) == rhs.preKeys.map(\.id) && lhs.preKeys.map(\.publicKey) == rhs.preKeys.map(\.publicKey)
            && lhs.signedPreKey.id == rhs.signedPreKey.id && lhs.signedPreKey.publicKey == rhs.signedPreKey.publicKey
            && lhs.signedPreKey.signature == rhs.signedPreKey.signature
    }

    /// Parses and checks an upload IQ: field sizes, key type, and the signed prekey's signature by the identity key.
    public init(parsing node: Node) throws(StanzaError) {
        let context = "prekey upload"
        registrationID = try KeyNodes.readRegistration(in: node, context: context)
        guard try KeyNodes.bytes(node.child("type"), "type", count: 1, context: context) == [0x05] else {
            throw StanzaError("prekey upload: key type is not 5")
        }
        identityPublicKey = try KeyNodes.bytes(node.child("identity"), "identity", count: 32, context: context)
        guard let list = node.child("list") else { throw StanzaError("prekey upload: no <list>") }
        var keys: [(UInt32, [UInt8])] = []
        for key in list.children("key") { keys.append(try KeyNodes.readKey(key, context: context)) }
        preKeys = keys
        signedPreKey = try KeyNodes.readSignedKey(in: node, context: context)
        guard
            XEdDSA.verify(
                publicKey: identityPublicKey, message: SignedPreKey.signedMessage(for: signedPreKey.publicKey), signature: signedPreKey.signature)
        else { throw StanzaError("prekey upload: the signed prekey's signature does not verify") }
    }

    /// The server's `<user>` answer to a bundle request for `jid`, handing out `preKey` (each one-time prekey once).
    public func bundle(for jid: JID, preKey: (id: UInt32, publicKey: [UInt8])?) -> Node {
        var children = [
            KeyNodes.registration(registrationID), Node(tag: "identity", bytes: identityPublicKey),
            KeyNodes.signedKey(id: signedPreKey.id, publicKey: signedPreKey.publicKey, signature: signedPreKey.signature),
        ]
        if let preKey { children.append(KeyNodes.key(id: preKey.id, publicKey: preKey.publicKey)) }
        return Node(tag: "user", attributes: ["jid": .jid(jid)], children: children)
    }
}
