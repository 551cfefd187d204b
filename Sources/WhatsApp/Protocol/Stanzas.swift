import WABinary

/// A group the companion's account is a member of.
public struct WhatsAppGroup: Sendable, Hashable, Codable {
    /// The group JID, `…@g.us`.
    public var id: String
    /// The group's name.
    public var subject: String
    /// The members' JIDs (phone-number or LID form, as the server sends them).
    public var participants: [String]

    public init(id: String, subject: String, participants: [String]) {
        self.id = id
        self.subject = subject
        self.participants = participants
    }
}

/// Builders and parsers for the stanzas the client exchanges after login (docs/protocol-notes.md#login-success and the sections after it).
public enum Stanzas {
    /// `<iq xmlns="w:p" type="get">` without a child: the keepalive ping (docs/protocol-notes.md#keepalive).
    public static func keepalivePing(id: String) -> Node {
        Node(tag: "iq", attributes: ["id": .string(id), "to": .jid(.whatsappServer), "type": "get", "xmlns": "w:p"])
    }

    /// The passive IQ with `<active/>` sent after `<success>` (docs/protocol-notes.md#login-success).
    public static func setActive(id: String) -> Node {
        Node(
            tag: "iq", attributes: ["id": .string(id), "to": .jid(.whatsappServer), "type": "set", "xmlns": "passive"],
            children: [Node(tag: "active")])
    }

    /// The request for every group the account participates in (docs/protocol-notes.md#groups).
    public static func participatingGroups(id: String) -> Node {
        Node(
            tag: "iq", attributes: ["id": .string(id), "to": .jid(.groupServer), "type": "get", "xmlns": "w:g2"],
            children: [Node(tag: "participating", children: [Node(tag: "participants"), Node(tag: "description")])])
    }

    /// Parses the `<groups>` answer; group ids are normalised to full `@g.us` JIDs.
    public static func parseGroups(_ response: Node) throws(StanzaError) -> [WhatsAppGroup] {
        guard let groups = response.child("groups") else {
            throw StanzaError("groups response has no <groups> child")
        }
        return try groups.children("group").map { group throws(StanzaError) in
            var reader = group.attributeReader
            let rawID = reader.string("id")
            let subject = reader.optionalString("subject") ?? ""
            do { try reader.check() } catch { throw StanzaError("group without id") }
            let id = rawID.contains("@") ? rawID : rawID + "@g.us"
            let participants = group.children("participant").compactMap { $0.attributes["jid"].map(\.description) }
            return WhatsAppGroup(id: id, subject: subject, participants: participants)
        }
    }

    /// The logout request that unlinks this companion (docs/protocol-notes.md#logout).
    public static func removeCompanionDevice(id: String, ownJID: JID) -> Node {
        Node(
            tag: "iq", attributes: ["id": .string(id), "to": .jid(.whatsappServer), "type": "set", "xmlns": "md"],
            children: [Node(tag: "remove-companion-device", attributes: ["jid": .jid(ownJID), "reason": "user_initiated"])])
    }

    /// The `<ack>` the server expects for a `<message>`, `<receipt>`, `<notification>` or `<call>` (docs/protocol-notes.md#acks).
    public static func ack(for stanza: Node) -> Node? {
        guard ["message", "receipt", "notification", "call"].contains(stanza.tag), let id = stanza.attributes["id"],
            let from = stanza.attributes["from"]
        else { return nil }
        var attributes: Attributes = ["id": id, "to": from, "class": .string(stanza.tag)]
        if stanza.tag != "message", let type = stanza.attributes["type"] { attributes.append(Attribute(key: "type", value: type)) }
        if let participant = stanza.attributes["participant"] { attributes.append(Attribute(key: "participant", value: participant)) }
        if let recipient = stanza.attributes["recipient"] { attributes.append(Attribute(key: "recipient", value: recipient)) }
        return Node(tag: "ack", attributes: attributes)
    }

    /// The `<iq type="result">` answering a server request with the same id and `to` its sender.
    public static func iqResult(answering request: Node) -> Node? {
        guard let id = request.attributes["id"] else { return nil }
        var attributes: Attributes = ["id": id, "type": "result"]
        if let from = request.attributes["from"] { attributes.append(Attribute(key: "to", value: from)) }
        return Node(tag: "iq", attributes: attributes)
    }

    /// The `code` and `text` of an `<iq type="error">`, if it is one.
    public static func iqError(_ response: Node) -> (code: Int, text: String)? {
        guard response.tag == "iq", response.attributes["type"]?.string == "error" else { return nil }
        let error = response.child("error")
        let code = error?.attributes["code"]?.string.flatMap { Int($0) } ?? 0
        return (code, error?.attributes["text"]?.string ?? "")
    }
}

/// A stanza did not have the shape the protocol promises.
public struct StanzaError: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Makes IQ ids unique within a connection: `<random>.<random>-<counter>` (docs/protocol-notes.md#iq-ids).
public struct IQIDGenerator: Sendable {
    private let prefix: String
    private var counter: UInt64 = 0

    public init() {
        prefix = "\(UInt16.random(in: .min ... .max)).\(UInt16.random(in: .min ... .max))"
    }

    /// Ids `prefix-1`, `prefix-2`, …; for tests that need known ids.
    public init(prefix: String) {
        self.prefix = prefix
    }

    /// The next id.
    public mutating func next() -> String {
        counter += 1
        return "\(prefix)-\(counter)"
    }
}
