// Binary XML encoder (docs/protocol-notes.md#binary-nodes to #binary-jids).

/// Encodes nodes to WhatsApp binary XML, without the frame's flags byte.
///
/// Attributes whose value is the empty string are left out (the reference clients
/// omitting them), so the written list size counts only the attributes actually written.
public struct NodeEncoder: Sendable {
    /// Nodes nested deeper than this are refused, so that everything encoded can be decoded.
    public var maximumDepth: Int

    /// An encoder refusing nodes nested deeper than `maximumDepth` (the decoder's default).
    public init(maximumDepth: Int = NodeDecoder.defaultMaximumDepth) {
        self.maximumDepth = maximumDepth
    }

    /// The binary encoding of `node`.
    public func encode(_ node: Node) throws(BinaryEncodingError) -> [UInt8] {
        var writer = BinaryWriter()
        try writer.writeNode(node, depth: 1, maximumDepth: maximumDepth)
        return writer.bytes
    }

    /// Appends the binary encoding of `node` to `bytes`; on error `bytes` may hold a partial node.
    public func encode(_ node: Node, into bytes: inout [UInt8]) throws(BinaryEncodingError) {
        var writer = BinaryWriter(bytes: bytes)
        bytes = []
        defer { bytes = writer.bytes }
        try writer.writeNode(node, depth: 1, maximumDepth: maximumDepth)
    }
}

/// A node that cannot be written in the binary format.
public struct BinaryEncodingError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Why the node cannot be written.
    public struct Reason: Hashable, Sendable, CustomStringConvertible {
        private enum Value: String, Sendable {
            case emptyTag = "a node tag is empty"
            case emptyAttributeKey = "an attribute key is empty"
            case tooManyItems = "a list has more than 65535 items"
            case bytesTooLong = "a byte string is longer than 2^32-1 bytes"
            case nestingTooDeep = "nodes are nested deeper than the maximum depth"
            case unencodableJID = "a JID cannot be written (no server, or device/agent/integrator not allowed for its server)"
        }

        private let value: Value
        private init(_ value: Value) { self.value = value }

        /// A short description of the problem.
        public var description: String { value.rawValue }

        /// A node tag is empty.
        public static let emptyTag = Reason(.emptyTag)
        /// An attribute key is empty.
        public static let emptyAttributeKey = Reason(.emptyAttributeKey)
        /// A node has more than 65535 list items or children.
        public static let tooManyItems = Reason(.tooManyItems)
        /// Bytes or a raw string longer than BINARY_32 can describe.
        public static let bytesTooLong = Reason(.bytesTooLong)
        /// The node is nested deeper than the encoder's `maximumDepth`.
        public static let nestingTooDeep = Reason(.nestingTooDeep)
        /// A JID has no server, or a device, agent or integrator its wire form cannot carry.
        public static let unencodableJID = Reason(.unencodableJID)
    }

    /// Why the node cannot be written.
    public let reason: Reason
    /// The tag of the node being written when the problem was found.
    public let tag: String

    init(_ reason: Reason, tag: String) {
        self.reason = reason
        self.tag = tag
    }

    /// A message naming the problem and the node.
    public var description: String { "cannot encode <\(tag)>: \(reason)" }
}

/// Appends binary XML items to a byte array.
struct BinaryWriter {
    var bytes: [UInt8]

    init(bytes: [UInt8] = []) {
        self.bytes = bytes
    }

    mutating func writeNode(_ node: Node, depth: Int, maximumDepth: Int) throws(BinaryEncodingError) {
        let tag = node.tag
        guard depth <= maximumDepth else { throw BinaryEncodingError(.nestingTooDeep, tag: tag) }
        guard !tag.isEmpty else { throw BinaryEncodingError(.emptyTag, tag: tag) }

        var attributeCount = 0
        for attribute in node.attributes where !Self.isOmitted(attribute.value) {
            guard !attribute.key.isEmpty else { throw BinaryEncodingError(.emptyAttributeKey, tag: tag) }
            attributeCount += 1
        }
        let hasContent: Bool
        if case .none = node.content { hasContent = false } else { hasContent = true }

        try writeListStart(1 + 2 * attributeCount + (hasContent ? 1 : 0), tag: tag)
        writeString(tag)
        for attribute in node.attributes where !Self.isOmitted(attribute.value) {
            writeString(attribute.key)
            switch attribute.value {
            case .string(let string): writeString(string)
            case .jid(let jid): try writeJID(jid, tag: tag)
            }
        }

        switch node.content {
        case .none:
            break
        case .nodes(let children):
            try writeListStart(children.count, tag: tag)
            for child in children {
                try writeNode(child, depth: depth + 1, maximumDepth: maximumDepth)
            }
        case .bytes(let content):
            try writeBinary(content, tag: tag)
        case .string(let string):
            if !writeTokenOrPacked(string) {
                try writeBinary(string.utf8, tag: tag)
            }
        case .jid(let jid):
            try writeJID(jid, tag: tag)
        }
    }

    /// An attribute whose value is the empty string is not written.
    private static func isOmitted(_ value: AttributeValue) -> Bool {
        if case .string(let string) = value { return string.isEmpty }
        return false
    }

    mutating func writeListStart(_ count: Int, tag: String) throws(BinaryEncodingError) {
        switch count {
        case 0:
            bytes.append(BinaryTag.listEmpty)
        case 1..<256:
            bytes.append(BinaryTag.list8)
            bytes.append(UInt8(count))
        case 256...0xFFFF:
            bytes.append(BinaryTag.list16)
            bytes.append(UInt8(count >> 8))
            bytes.append(UInt8(count & 0xFF))
        default:
            throw BinaryEncodingError(.tooManyItems, tag: tag)
        }
    }

    /// Writes a string by the rules of docs/protocol-notes.md#binary-strings: token, nibble-packed, hex-packed, else raw UTF-8.
    ///
    /// Strings come from `String`, whose UTF-8 count is far below 2^32, so the raw form cannot fail.
    mutating func writeString(_ string: String) {
        if writeTokenOrPacked(string) { return }
        writeBinaryHeader(string.utf8.count)
        bytes.append(contentsOf: string.utf8)
    }

    /// Writes `string` as a token or a packed string when one of those forms applies; false otherwise.
    private mutating func writeTokenOrPacked(_ string: String) -> Bool {
        if let code = Tokens.code(for: string) {
            if let dictionary = code.dictionary {
                bytes.append(BinaryTag.dictionary0 + dictionary)
            }
            bytes.append(code.index)
            return true
        }
        let utf8 = string.utf8
        let count = utf8.count
        guard count > 0, count <= BinaryTag.packedMaximum else { return false }
        if utf8.allSatisfy({ PackedAlphabet.nibble($0) != nil }) {
            writePacked(utf8, count: count, tag: BinaryTag.nibble8, value: PackedAlphabet.nibble)
            return true
        }
        if utf8.allSatisfy({ PackedAlphabet.hex($0) != nil }) {
            writePacked(utf8, count: count, tag: BinaryTag.hex8, value: PackedAlphabet.hex)
            return true
        }
        return false
    }

    /// Packs two characters per byte, high nibble first, padding an odd length with 0xF.
    private mutating func writePacked(
        _ utf8: String.UTF8View, count: Int, tag: UInt8, value: (UInt8) -> UInt8?
    ) {
        bytes.append(tag)
        let odd = count % 2 == 1
        bytes.append(UInt8((count + 1) / 2) | (odd ? 0x80 : 0))
        var high: UInt8? = nil
        for character in utf8 {
            let nibble = value(character) ?? 0x0F
            if let pending = high {
                bytes.append(pending << 4 | nibble)
                high = nil
            } else {
                high = nibble
            }
        }
        if let pending = high {
            bytes.append(pending << 4 | 0x0F)
        }
    }

    private mutating func writeBinaryHeader(_ length: Int) {
        if length < 256 {
            bytes.append(BinaryTag.binary8)
            bytes.append(UInt8(length))
        } else if length < 1 << 20 {
            bytes.append(BinaryTag.binary20)
            bytes.append(UInt8((length >> 16) & 0x0F))
            bytes.append(UInt8((length >> 8) & 0xFF))
            bytes.append(UInt8(length & 0xFF))
        } else {
            bytes.append(BinaryTag.binary32)
            bytes.append(UInt8((length >> 24) & 0xFF))
            bytes.append(UInt8((length >> 16) & 0xFF))
            bytes.append(UInt8((length >> 8) & 0xFF))
            bytes.append(UInt8(length & 0xFF))
        }
    }

    private mutating func writeBinary(_ content: some Collection<UInt8>, tag: String) throws(BinaryEncodingError) {
        let length = content.count
        guard length <= Int(UInt32.max) else { throw BinaryEncodingError(.bytesTooLong, tag: tag) }
        writeBinaryHeader(length)
        bytes.append(contentsOf: content)
    }

    /// Writes a JID as AD_JID, FB_JID, INTEROP_JID or JID_PAIR (docs/protocol-notes.md#binary-jids).
    mutating func writeJID(_ jid: JID, tag: String) throws(BinaryEncodingError) {
        let unencodable = BinaryEncodingError(.unencodableJID, tag: tag)
        guard !jid.server.rawValue.isEmpty else { throw unencodable }
        switch jid.server {
        case .messenger:
            guard jid.rawAgent == 0, jid.integrator == 0 else { throw unencodable }
            bytes.append(BinaryTag.fbJID)
            writeString(jid.user)
            writeUInt16(jid.device)
            writeString(jid.server.rawValue)
        case .interop:
            guard jid.rawAgent == 0 else { throw unencodable }
            bytes.append(BinaryTag.interopJID)
            writeString(jid.user)
            writeUInt16(jid.device)
            writeUInt16(jid.integrator)
            writeString(jid.server.rawValue)
        case .hosted, .hostedLID:
            guard jid.rawAgent == 0 else { throw unencodable }
            try writeADJID(jid, domain: jid.server == .hosted ? 128 : 129, error: unencodable)
        case .lid where jid.device != 0 || jid.rawAgent != 0:
            guard jid.rawAgent == 0 else { throw unencodable }
            try writeADJID(jid, domain: 1, error: unencodable)
        case .phoneNumber where jid.device != 0 || jid.rawAgent != 0:
            guard !JID.reservedAgents.contains(jid.rawAgent) else { throw unencodable }
            try writeADJID(jid, domain: jid.rawAgent, error: unencodable)
        default:
            guard jid.device == 0, jid.rawAgent == 0 else { throw unencodable }
            guard jid.integrator == 0 else { throw unencodable }
            bytes.append(BinaryTag.jidPair)
            if jid.user.isEmpty {
                bytes.append(BinaryTag.listEmpty)
            } else {
                writeString(jid.user)
            }
            writeString(jid.server.rawValue)
        }
    }

    private mutating func writeADJID(_ jid: JID, domain: UInt8, error: BinaryEncodingError) throws(BinaryEncodingError) {
        guard jid.integrator == 0, let device = UInt8(exactly: jid.device) else { throw error }
        bytes.append(BinaryTag.adJID)
        bytes.append(domain)
        bytes.append(device)
        writeString(jid.user)
    }

    private mutating func writeUInt16(_ value: UInt16) {
        bytes.append(UInt8(value >> 8))
        bytes.append(UInt8(value & 0xFF))
    }
}
