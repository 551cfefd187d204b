// The node model of WhatsApp's binary XML (docs/protocol-notes.md#binary-nodes).

/// One binary-XML element: a tag, ordered attributes and optional content.
public struct Node: Hashable, Sendable {
    /// The element name, e.g. `iq`; never empty on the wire.
    public var tag: String
    /// The attributes in wire order.
    public var attributes: Attributes
    /// The content: nothing, child nodes, bytes, a string or a JID.
    public var content: Content

    /// Creates a node with any kind of content.
    public init(tag: String, attributes: Attributes = [:], content: Content = .none) {
        self.tag = tag
        self.attributes = attributes
        self.content = content
    }

    /// Creates a node whose content is a list of child nodes.
    public init(tag: String, attributes: Attributes = [:], children: [Node]) {
        self.init(tag: tag, attributes: attributes, content: .nodes(children))
    }

    /// Creates a node whose content is raw bytes.
    public init(tag: String, attributes: Attributes = [:], bytes: [UInt8]) {
        self.init(tag: tag, attributes: attributes, content: .bytes(bytes))
    }
}

extension Node {
    /// The content of a node.
    ///
    /// The decoder yields `.bytes` for BINARY_* content and `.string` / `.jid` only for token, packed
    /// and JID items. The encoder writes a `.string` that is neither a token nor packable as BINARY_*,
    /// so it comes back as `.bytes`.
    public enum Content: Hashable, Sendable {
        /// No content: nothing follows the attributes.
        case none
        /// A list of child nodes (possibly empty).
        case nodes([Node])
        /// Raw bytes, kept as bytes.
        case bytes([UInt8])
        /// A string, written with the token / packed / raw string rules.
        case string(String)
        /// A JID.
        indirect case jid(JID)
    }

    /// The child nodes, or an empty array when the content is not a list.
    public var children: [Node] {
        if case .nodes(let children) = content { return children }
        return []
    }

    /// The first child with the given tag.
    public func child(_ tag: String) -> Node? {
        guard case .nodes(let children) = content else { return nil }
        return children.first { $0.tag == tag }
    }

    /// All children with the given tag, in order.
    public func children(_ tag: String) -> [Node] {
        guard case .nodes(let children) = content else { return [] }
        return children.filter { $0.tag == tag }
    }

    /// The first node reached by following `path` one child tag at a time.
    public func child(path: String...) -> Node? {
        var node = self
        for tag in path {
            guard let next = node.child(tag) else { return nil }
            node = next
        }
        return node
    }

    /// The content as bytes: `.bytes` as is, `.string` as UTF-8; nil for anything else.
    public var contentBytes: [UInt8]? {
        switch content {
        case .bytes(let bytes): bytes
        case .string(let string): Array(string.utf8)
        case .none, .nodes, .jid: nil
        }
    }

    /// A typed reader over this node's attributes.
    public var attributeReader: AttributeReader { AttributeReader(self) }
}

// MARK: - Attributes

/// One attribute: a key and a string or JID value.
public struct Attribute: Hashable, Sendable {
    /// The attribute name.
    public var key: String
    /// The attribute value.
    public var value: AttributeValue

    /// Creates an attribute.
    public init(key: String, value: AttributeValue) {
        self.key = key
        self.value = value
    }
}

/// An attribute value: a string or a JID.
public enum AttributeValue: Hashable, Sendable, ExpressibleByStringLiteral, CustomStringConvertible {
    /// A string value.
    case string(String)
    /// A JID value, written as JID_PAIR / AD_JID / FB_JID / INTEROP_JID.
    indirect case jid(JID)

    /// A string value from a literal.
    public init(stringLiteral value: String) {
        self = .string(value)
    }

    /// The value as text; a JID in its textual form.
    public var description: String {
        switch self {
        case .string(let string): string
        case .jid(let jid): jid.description
        }
    }

    /// The JID, when the value is one.
    public var jid: JID? {
        if case .jid(let jid) = self { return jid }
        return nil
    }

    /// The string, when the value is a string.
    public var string: String? {
        if case .string(let string) = self { return string }
        return nil
    }
}

/// The ordered attributes of a node; duplicate keys are kept, lookups return the first.
public struct Attributes: Hashable, Sendable, RandomAccessCollection, ExpressibleByDictionaryLiteral {
    private var storage: [Attribute]

    /// No attributes.
    public init() {
        storage = []
    }

    /// The given attributes, in order.
    public init(_ attributes: [Attribute]) {
        storage = attributes
    }

    /// Attributes from a literal such as `["id": "1", "to": .jid(.whatsappServer)]`, in literal order.
    public init(dictionaryLiteral elements: (String, AttributeValue)...) {
        storage = elements.map { Attribute(key: $0.0, value: $0.1) }
    }

    /// The position of the first attribute.
    public var startIndex: Int { storage.startIndex }
    /// The position after the last attribute.
    public var endIndex: Int { storage.endIndex }
    /// The attribute at `position`.
    public subscript(position: Int) -> Attribute { storage[position] }

    /// The value of the first attribute named `key`; setting replaces it in place, or appends, and nil removes every one.
    public subscript(key: String) -> AttributeValue? {
        get { storage.first { $0.key == key }?.value }
        set {
            guard let newValue else {
                storage.removeAll { $0.key == key }
                return
            }
            if let index = storage.firstIndex(where: { $0.key == key }) {
                storage[index].value = newValue
            } else {
                storage.append(Attribute(key: key, value: newValue))
            }
        }
    }

    /// Appends an attribute without checking for duplicates.
    public mutating func append(_ attribute: Attribute) {
        storage.append(attribute)
    }

    /// Reserves room for `count` attributes.
    mutating func reserveCapacity(_ count: Int) {
        storage.reserveCapacity(count)
    }
}

// MARK: - Description

extension Node: CustomStringConvertible {
    /// An XML-like rendering for logs and tests; bytes are shown as hex (long ones shortened).
    public var description: String {
        var out = ""
        Self.render(self, into: &out)
        return out
    }

    private static func render(_ node: Node, into out: inout String) {
        out += "<" + node.tag
        for attribute in node.attributes {
            out += " \(attribute.key)=\"\(attribute.value)\""
        }
        switch node.content {
        case .none:
            out += "/>"
            return
        case .nodes(let children):
            out += ">"
            for child in children { render(child, into: &out) }
        case .bytes(let bytes):
            out += ">" + hex(bytes)
        case .string(let string):
            out += ">" + string
        case .jid(let jid):
            out += ">" + jid.description
        }
        out += "</" + node.tag + ">"
    }

    private static func hex(_ bytes: [UInt8]) -> String {
        let shown = bytes.prefix(64)
        var out = "0x"
        for byte in shown {
            out.append(Character(Unicode.Scalar(PackedAlphabet.hexCharacter(byte >> 4))))
            out.append(Character(Unicode.Scalar(PackedAlphabet.hexCharacter(byte & 0x0F))))
        }
        if bytes.count > shown.count { out += "…(\(bytes.count) bytes)" }
        return out
    }
}
