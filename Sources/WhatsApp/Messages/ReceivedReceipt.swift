import WABinary

/// A receipt for messages we sent: they reached a device of the recipient, or were read or played there.
public struct ReceivedReceipt: Sendable, Equatable {
    /// What the receipt says.
    public enum Kind: String, Sendable {
        case delivered
        case read
        case played
    }

    /// The message ids it covers (the stanza's id and those in its `<list>`).
    public var ids: [String]
    /// The chat: the recipient's account, or the group.
    public var chat: JID
    /// The recipient's account that sent the receipt (the participant in a group).
    public var from: JID
    public var kind: Kind
    /// Server time, unix seconds.
    public var timestamp: UInt64

    /// Reads a `<receipt>`; nil for receipt kinds that report nothing to the tenant (`retry`, `sender`, `inactive`, …).
    public init?(parsing node: Node) throws(MessageStanzaError) {
        guard node.tag == "receipt" else { throw MessageStanzaError("not a receipt stanza: <\(node.tag)>") }
        var reader = node.attributeReader
        let id = reader.string("id")
        let from = reader.jid("from")
        let participant = reader.optionalJID("participant")
        let type = reader.optionalString("type")
        timestamp = reader.optionalUInt64("t") ?? 0
        do { try reader.check() } catch { throw MessageStanzaError("\(error)") }
        switch type {
        case nil: kind = .delivered
        case "read", "read-self": kind = .read
        case "played", "played-self": kind = .played
        default: return nil
        }
        guard !id.isEmpty, id.count <= 128 else { throw MessageStanzaError("receipt id missing or too long") }
        var ids = [id]
        for item in node.child("list")?.children("item") ?? [] {
            guard let more = item.attributes["id"]?.string, !more.isEmpty, more.count <= 128 else { continue }
            ids.append(more)
        }
        self.ids = ids
        if from.isGroup {
            guard let participant else { throw MessageStanzaError("group receipt without participant") }
            chat = from
            self.from = participant.withoutDevice
        } else {
            chat = from.withoutDevice
            self.from = from.withoutDevice
        }
    }
}
