import WABinary

/// A one-time prekey: an X25519 key pair with a 24-bit id (docs/protocol-notes.md#prekeys).
public struct PreKey: Codable, Sendable, Equatable {
    /// The 24-bit id, sent as 3 big-endian bytes.
    public var id: UInt32
    /// The key pair; the private half stays in the credential store.
    public var keyPair: Curve25519KeyPair

    public init(id: UInt32, keyPair: Curve25519KeyPair) {
        self.id = id
        self.keyPair = keyPair
    }

    /// Fresh prekeys with ids `firstID`, `firstID + 1`, … (wrapping within 1…0xFFFFFF).
    public static func generate(count: Int, firstID: UInt32) -> [PreKey] {
        (0..<count).map { offset in
            let id = (firstID - 1 + UInt32(offset)) % maximumID + 1
            return PreKey(id: id, keyPair: .generate())
        }
    }

    /// Prekey ids are 24-bit and never 0.
    public static let maximumID: UInt32 = 0xFF_FFFF

    /// The storage form: a version byte, then one 68-byte record per key (id as 4 big-endian bytes, private, public).
    ///
    /// Compact and cheap on purpose: pairing stores 812 keys, which as JSON cost more CPU than generating them.
    public static func serialize(_ preKeys: [PreKey]) -> [UInt8] {
        var bytes: [UInt8] = [storageVersion]
        bytes.reserveCapacity(1 + preKeys.count * storageRecordSize)
        for key in preKeys {
            bytes += KeyNodes.bigEndian(key.id, bytes: 4)
            bytes += key.keyPair.privateKey
            bytes += key.keyPair.publicKey
        }
        return bytes
    }

    /// Reads what ``serialize(_:)`` wrote; the file is sealed, so pairs are not re-derived, only checked for shape.
    public static func deserialize(_ bytes: [UInt8]) throws(PreKeyStorageError) -> [PreKey] {
        guard let version = bytes.first else { throw PreKeyStorageError("empty prekey record") }
        guard version == storageVersion else { throw PreKeyStorageError("unknown prekey record version \(version)") }
        let body = bytes.dropFirst()
        guard body.count % storageRecordSize == 0 else {
            throw PreKeyStorageError("prekey record length \(body.count) is not a multiple of \(storageRecordSize)")
        }
        var keys: [PreKey] = []
        keys.reserveCapacity(body.count / storageRecordSize)
        var offset = body.startIndex
        while offset < body.endIndex {
            let id = body[offset..<offset + 4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            guard (1...maximumID).contains(id) else { throw PreKeyStorageError("prekey id \(id) is outside 1…\(maximumID)") }
            let pair = Curve25519KeyPair(
                trustedPrivateKey: Array(body[offset + 4..<offset + 36]), publicKey: Array(body[offset + 36..<offset + 68]))
            keys.append(PreKey(id: id, keyPair: pair))
            offset += storageRecordSize
        }
        return keys
    }

    /// Reads only the records of ``serialize(_:)``'s form whose id is in `ids` (a message needs one of 812).
    public static func deserialize(_ bytes: [UInt8], only ids: Set<UInt32>) throws(PreKeyStorageError) -> [PreKey] {
        guard let version = bytes.first else { throw PreKeyStorageError("empty prekey record") }
        guard version == storageVersion else { throw PreKeyStorageError("unknown prekey record version \(version)") }
        guard (bytes.count - 1) % storageRecordSize == 0 else {
            throw PreKeyStorageError("prekey record length \(bytes.count - 1) is not a multiple of \(storageRecordSize)")
        }
        var keys: [PreKey] = []
        var offset = 1
        while offset < bytes.count {
            let id = bytes[offset..<offset + 4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            if ids.contains(id) {
                let pair = Curve25519KeyPair(
                    trustedPrivateKey: Array(bytes[offset + 4..<offset + 36]), publicKey: Array(bytes[offset + 36..<offset + 68]))
                keys.append(PreKey(id: id, keyPair: pair))
            }
            offset += storageRecordSize
        }
        return keys
    }

    private static let storageVersion: UInt8 = 1
    private static let storageRecordSize = 68
}

/// Stored prekeys could not be read back.
public struct PreKeyStorageError: Error, Sendable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// When and how many prekeys to upload (whatsmeow's numbers).
public enum PreKeyPolicy {
    /// Upload when the server holds fewer than this.
    public static let minimumOnServer = 5
    /// The batch after pairing, when the server holds none.
    public static let initialBatch = 812
    /// The batch when the server runs low later.
    public static let refillBatch = 50
}

extension Stanzas {
    /// `<iq xmlns="encrypt" type="get"><count/></iq>`: how many prekeys the server holds.
    public static func preKeyCount(id: String) -> Node {
        Node(
            tag: "iq", attributes: ["id": .string(id), "to": .jid(.whatsappServer), "type": "get", "xmlns": "encrypt"],
            children: [Node(tag: "count")])
    }

    /// The `value` of the `<count>` in a count answer or an `encrypt` notification.
    public static func parsePreKeyCount(_ node: Node) throws(StanzaError) -> Int {
        guard let text = node.child("count")?.attributes["value"]?.string, let value = Int(text), value >= 0 else {
            throw StanzaError("no <count value=…> in \(node.tag)")
        }
        return value
    }

    /// The prekey upload IQ: registration id, key type, identity key, the prekeys and the signed prekey.
    public static func preKeyUpload(
        id: String, registrationID: UInt32, identityPublicKey: [UInt8], preKeys: [PreKey], signedPreKey: SignedPreKey
    ) -> Node {
        Node(
            tag: "iq", attributes: ["id": .string(id), "to": .jid(.whatsappServer), "type": "set", "xmlns": "encrypt"],
            children: [
                KeyNodes.registration(registrationID),
                Node(tag: "type", bytes: [0x05]),
                Node(tag: "identity", bytes: identityPublicKey),
                Node(tag: "list", children: preKeys.map { KeyNodes.key(id: $0.id, publicKey: $0.keyPair.publicKey) }),
                KeyNodes.signedKey(id: signedPreKey.id, publicKey: signedPreKey.keyPair.publicKey, signature: signedPreKey.signature),
            ])
    }
}
