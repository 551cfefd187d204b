import WABinary

/// One encrypted payload of a `<message>`: `pkmsg`/`msg` for one device, `skmsg` for a whole group.
public struct EncryptedPayload: Sendable, Equatable {
    public enum Kind: String, Sendable {
        case preKeyMessage = "pkmsg"
        case message = "msg"
        case senderKeyMessage = "skmsg"
    }

    public var kind: Kind
    public var bytes: [UInt8]

    public init(kind: Kind, bytes: [UInt8]) {
        self.kind = kind
        self.bytes = bytes
    }

    /// The one-time prekey a `pkmsg` names (field 1 of the PreKeySignalMessage after its version byte); nil when it
    /// names none or is not a `pkmsg`.
    public var preKeyID: UInt32? {
        guard kind == .preKeyMessage, bytes.count > 1 else { return nil }
        var reader = ProtobufFieldReader(Array(bytes.dropFirst()))
        while let field = try? reader.nextField() {
            if field.number == 1, let value = field.varint, let id = UInt32(exactly: value) { return id }
        }
        return nil
    }
}

/// An incoming `<message>` stanza, read but not yet decrypted.
public struct IncomingMessage: Sendable, Equatable {
    /// The message id (the sender's choice; duplicates are dropped by it).
    public var id: String
    /// The chat: the sender's account for a 1:1 message, the group for a group message.
    public var chat: JID
    /// The sending device.
    public var sender: JID
    /// The sender's phone-number JID when the stanza addresses it by LID and names the number too.
    public var senderPhoneNumber: JID?
    /// Server time, unix seconds.
    public var timestamp: UInt64
    /// The sender's display name, when the server sent it.
    public var pushName: String?
    /// The encrypted payloads, in stanza order (a group message may carry a `pkmsg` with the sender key, then the `skmsg`).
    public var payloads: [EncryptedPayload]

    /// True for a group chat.
    public var isGroup: Bool { chat.isGroup }

    /// Reads a `<message>` stanza; refuses one without id, sender or any `<enc>` we can read.
    public init(parsing node: Node) throws(MessageStanzaError) {
        guard node.tag == "message" else { throw MessageStanzaError("not a message stanza: <\(node.tag)>") }
        var reader = node.attributeReader
        id = reader.string("id")
        let from = reader.jid("from")
        let participant = reader.optionalJID("participant")
        timestamp = reader.optionalUInt64("t") ?? 0
        pushName = reader.optionalString("notify")
        let participantPN = reader.optionalJID("participant_pn")
        let senderPN = reader.optionalJID("sender_pn")
        do { try reader.check() } catch { throw MessageStanzaError("\(error)") }
        guard !id.isEmpty, id.count <= 128 else { throw MessageStanzaError("message id missing or too long") }
        if from.isGroup {
            guard let participant else { throw MessageStanzaError("group message without participant") }
            chat = from
            sender = participant
            senderPhoneNumber = participantPN
        } else {
            chat = from.withoutDevice
            sender = from
            senderPhoneNumber = senderPN
        }
        // Payload types we do not read (`msmsg`, say) are skipped; the message is refused only when none is left.
        var readable: [EncryptedPayload] = []
        for enc in node.children("enc") {
            guard let type = enc.attributes["type"]?.string, let kind = EncryptedPayload.Kind(rawValue: type) else { continue }
            guard let bytes = enc.contentBytes, !bytes.isEmpty else { throw MessageStanzaError("empty \(type) payload") }
            readable.append(EncryptedPayload(kind: kind, bytes: bytes))
        }
        payloads = readable
        guard !payloads.isEmpty else { throw MessageStanzaError("message without an enc payload we can read") }
    }

    /// The delivery receipt that tells the sender the message arrived (sent once it is stored).
    public var deliveryReceipt: Node {
        var attributes: Attributes = ["id": .string(id), "to": .jid(chat)]
        if isGroup { attributes.append(Attribute(key: "participant", value: .jid(sender))) }
        return Node(tag: "receipt", attributes: attributes)
    }

    /// Asks the sender to encrypt again (`type="retry"`): decryption failed; `count` starts at 1.
    public func retryReceipt(count: Int, registrationID: UInt32) -> Node {
        var attributes: Attributes = ["id": .string(id), "to": .jid(chat), "type": "retry"]
        if isGroup { attributes.append(Attribute(key: "participant", value: .jid(sender))) }
        let registration = withUnsafeBytes(of: registrationID.bigEndian) { Array($0) }
        return Node(
            tag: "receipt", attributes: attributes,
            children: [
                Node(tag: "retry", attributes: ["count": .string(String(count)), "id": .string(id), "t": .string(String(timestamp)), "v": "1"]),
                Node(tag: "registration", bytes: registration),
            ])
    }
}

/// A message stanza could not be read or built.
public struct MessageStanzaError: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
