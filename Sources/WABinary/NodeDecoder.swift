// Binary XML decoder (docs/protocol-notes.md#binary-nodes to #binary-jids) for untrusted input.

/// Decodes WhatsApp binary XML (without the frame's flags byte) into a `Node`.
///
/// The input is treated as hostile: nesting is bounded by `maximumDepth`, every declared list
/// size and length is checked against the bytes that remain before anything is allocated, work is
/// linear in the input size, and every failure is a `BinaryDecodingError` carrying the offset of
/// the offending item. Exactly one node must fill the input; trailing bytes are an error.
public struct NodeDecoder: Sendable {
    /// The default bound on node nesting: the root node is depth 1.
    public static let defaultMaximumDepth = 64

    /// Nodes nested deeper than this are rejected.
    public var maximumDepth: Int

    /// A decoder rejecting nodes nested deeper than `maximumDepth`.
    public init(maximumDepth: Int = NodeDecoder.defaultMaximumDepth) {
        self.maximumDepth = maximumDepth
    }

    /// Decodes the single node that fills `bytes`.
    public func decode(_ bytes: [UInt8]) throws(BinaryDecodingError) -> Node {
        try decode(bytes[...])
    }

    /// Decodes the single node that fills `bytes`; offsets in errors count from `bytes.startIndex`.
    public func decode(_ bytes: ArraySlice<UInt8>) throws(BinaryDecodingError) -> Node {
        var reader = BinaryReader(bytes)
        let node = try reader.readNode(depth: 1, maximumDepth: maximumDepth)
        guard reader.remaining == 0 else { throw BinaryDecodingError(.trailingBytes, offset: reader.offset) }
        return node
    }
}

/// Input that is not one well-formed binary XML node.
public struct BinaryDecodingError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What is wrong with the input.
    public struct Reason: Hashable, Sendable, CustomStringConvertible {
        private enum Value: String, Sendable {
            case truncated = "input ends inside an item"
            case lengthExceedsInput = "a declared size or length is larger than the rest of the input"
            case expectedList = "a node does not start with a list header"
            case emptyNode = "a node has list size 0"
            case invalidNodeTag = "a node tag is not a non-empty string"
            case invalidAttributeKey = "an attribute key is not a non-empty string"
            case invalidAttributeValue = "an attribute value is not a string or JID"
            case invalidTypeByte = "a type byte is unknown or not allowed here"
            case invalidPackedString = "a nibble- or hex-packed string is malformed"
            case invalidJID = "a JID item is malformed"
            case nestingTooDeep = "nodes are nested deeper than the maximum depth"
            case trailingBytes = "bytes follow the node"
            case emptyFrame = "the frame has no flags byte"
            case decompressionFailed = "the zlib-compressed frame does not inflate"
            case inflatedTooLarge = "the zlib-compressed frame inflates beyond the size limit"
        }

        private let value: Value
        private init(_ value: Value) { self.value = value }

        /// A short description of the problem.
        public var description: String { value.rawValue }

        /// The input ends inside an item.
        public static let truncated = Reason(.truncated)
        /// A list size or byte length is larger than what remains of the input.
        public static let lengthExceedsInput = Reason(.lengthExceedsInput)
        /// A node does not start with LIST_8 / LIST_16.
        public static let expectedList = Reason(.expectedList)
        /// A node's list size is 0.
        public static let emptyNode = Reason(.emptyNode)
        /// A node tag is empty, or not a string.
        public static let invalidNodeTag = Reason(.invalidNodeTag)
        /// An attribute key is empty, or not a string.
        public static let invalidAttributeKey = Reason(.invalidAttributeKey)
        /// An attribute value is a list or an unknown item.
        public static let invalidAttributeValue = Reason(.invalidAttributeValue)
        /// A type byte is unused (240...244) or not allowed where it appears.
        public static let invalidTypeByte = Reason(.invalidTypeByte)
        /// A packed string has an invalid nibble or length.
        public static let invalidPackedString = Reason(.invalidPackedString)
        /// A JID item has a bad part (e.g. empty server, wrong FB/interop server).
        public static let invalidJID = Reason(.invalidJID)
        /// Nodes are nested deeper than the decoder's `maximumDepth`.
        public static let nestingTooDeep = Reason(.nestingTooDeep)
        /// Bytes remain after the node.
        public static let trailingBytes = Reason(.trailingBytes)
        /// A frame plaintext is empty (it has no flags byte).
        public static let emptyFrame = Reason(.emptyFrame)
        /// A compressed frame is not valid zlib data.
        public static let decompressionFailed = Reason(.decompressionFailed)
        /// A compressed frame inflates to more than the allowed size.
        public static let inflatedTooLarge = Reason(.inflatedTooLarge)
    }

    /// What is wrong.
    public let reason: Reason
    /// The offset of the offending item in the decoded bytes.
    public let offset: Int

    /// An error for `reason` at `offset`.
    public init(_ reason: Reason, offset: Int) {
        self.reason = reason
        self.offset = offset
    }

    /// A message naming the problem and the offset.
    public var description: String { "binary node decoding failed at offset \(offset): \(reason)" }
}

/// Reads binary XML items from a byte slice, checking every access.
struct BinaryReader {
    private let bytes: ArraySlice<UInt8>
    private var position: Int

    init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        self.position = bytes.startIndex
    }

    /// Bytes not yet read.
    var remaining: Int { bytes.endIndex - position }

    /// The current position, counted from the start of the input.
    var offset: Int { position - bytes.startIndex }

    private func error(_ reason: BinaryDecodingError.Reason, at position: Int) -> BinaryDecodingError {
        BinaryDecodingError(reason, offset: position - bytes.startIndex)
    }

    // MARK: Primitive reads

    private mutating func readByte() throws(BinaryDecodingError) -> UInt8 {
        guard position < bytes.endIndex else { throw error(.truncated, at: position) }
        let byte = bytes[position]
        position += 1
        return byte
    }

    /// Reads a `width`-byte big-endian unsigned integer (width ≤ 4).
    private mutating func readInteger(width: Int) throws(BinaryDecodingError) -> Int {
        guard remaining >= width else { throw error(.truncated, at: position) }
        var value = 0
        for index in position..<(position + width) {
            value = value << 8 | Int(bytes[index])
        }
        position += width
        return value
    }

    /// Reads `count` bytes after checking that they are there.
    private mutating func readBytes(_ count: Int, itemStart: Int) throws(BinaryDecodingError) -> ArraySlice<UInt8> {
        guard count >= 0, count <= remaining else { throw error(.lengthExceedsInput, at: itemStart) }
        let slice = bytes[position..<(position + count)]
        position += count
        return slice
    }

    // MARK: Nodes

    mutating func readNode(depth: Int, maximumDepth: Int) throws(BinaryDecodingError) -> Node {
        let start = position
        guard depth <= maximumDepth else { throw error(.nestingTooDeep, at: start) }
        let typeByte = try readByte()
        guard let size = try readListSize(typeByte) else { throw error(.expectedList, at: start) }
        guard size > 0 else { throw error(.emptyNode, at: start) }
        // Every item takes at least one byte.
        guard size <= remaining else { throw error(.lengthExceedsInput, at: start) }

        let tagStart = position
        guard let tag = try readString(try readByte(), itemStart: tagStart), !tag.isEmpty else {
            throw error(.invalidNodeTag, at: tagStart)
        }

        let attributeCount = (size - 1) >> 1
        var attributes = Attributes()
        attributes.reserveCapacity(attributeCount)
        for _ in 0..<attributeCount {
            let keyStart = position
            guard let key = try readString(try readByte(), itemStart: keyStart), !key.isEmpty else {
                throw error(.invalidAttributeKey, at: keyStart)
            }
            attributes.append(Attribute(key: key, value: try readAttributeValue()))
        }

        let content: Node.Content = size % 2 == 0 ? try readContent(depth: depth, maximumDepth: maximumDepth) : .none
        return Node(tag: tag, attributes: attributes, content: content)
    }

    /// The list size announced by `typeByte`, or nil when it is not a list header.
    private mutating func readListSize(_ typeByte: UInt8) throws(BinaryDecodingError) -> Int? {
        switch typeByte {
        case BinaryTag.listEmpty: 0
        case BinaryTag.list8: try readInteger(width: 1)
        case BinaryTag.list16: try readInteger(width: 2)
        default: nil
        }
    }

    private mutating func readContent(depth: Int, maximumDepth: Int) throws(BinaryDecodingError) -> Node.Content {
        let start = position
        let typeByte = try readByte()
        if let count = try readListSize(typeByte) {
            // Each child node takes at least three bytes: a list header, its size and a tag.
            guard count <= remaining / 3 else { throw error(.lengthExceedsInput, at: start) }
            var children: [Node] = []
            children.reserveCapacity(count)
            for _ in 0..<count {
                children.append(try readNode(depth: depth + 1, maximumDepth: maximumDepth))
            }
            return .nodes(children)
        }
        if let length = try readBinaryLength(typeByte) {
            return .bytes(Array(try readBytes(length, itemStart: start)))
        }
        if let jid = try readJID(typeByte, itemStart: start) {
            return .jid(jid)
        }
        if let string = try readString(typeByte, itemStart: start) {
            return .string(string)
        }
        throw error(.invalidTypeByte, at: start)
    }

    private mutating func readAttributeValue() throws(BinaryDecodingError) -> AttributeValue {
        let start = position
        let typeByte = try readByte()
        if let jid = try readJID(typeByte, itemStart: start) {
            return .jid(jid)
        }
        if let string = try readString(typeByte, itemStart: start) {
            return .string(string)
        }
        throw error(.invalidAttributeValue, at: start)
    }

    // MARK: Strings

    /// The length announced by a BINARY_* type byte, or nil for any other byte.
    private mutating func readBinaryLength(_ typeByte: UInt8) throws(BinaryDecodingError) -> Int? {
        switch typeByte {
        case BinaryTag.binary8: try readInteger(width: 1)
        case BinaryTag.binary20: try readInteger(width: 3) & 0x0F_FFFF
        case BinaryTag.binary32: try readInteger(width: 4)
        default: nil
        }
    }

    /// Reads the string item introduced by `typeByte`; nil when `typeByte` does not introduce a string.
    ///
    /// LIST_EMPTY reads as the empty string, BINARY_* as UTF-8 (invalid sequences are replaced).
    private mutating func readString(_ typeByte: UInt8, itemStart: Int) throws(BinaryDecodingError) -> String? {
        switch typeByte {
        case BinaryTag.listEmpty:
            return ""
        case BinaryTag.dictionary0...BinaryTag.dictionary3:
            let index = try readByte()
            return Tokens.doubleByteToken(dictionary: typeByte - BinaryTag.dictionary0, index: index)
        case BinaryTag.nibble8, BinaryTag.hex8:
            return try readPacked(hex: typeByte == BinaryTag.hex8, itemStart: itemStart)
        case BinaryTag.binary8, BinaryTag.binary20, BinaryTag.binary32:
            guard let length = try readBinaryLength(typeByte) else { return nil }
            return String(decoding: try readBytes(length, itemStart: itemStart), as: UTF8.self)
        default:
            return Tokens.singleByteToken(typeByte)
        }
    }

    /// Reads a NIBBLE_8 / HEX_8 body: a length byte (high bit = odd), then two characters per byte.
    private mutating func readPacked(hex: Bool, itemStart: Int) throws(BinaryDecodingError) -> String {
        let header = try readByte()
        let odd = header & 0x80 != 0
        let packed = try readBytes(Int(header & 0x7F), itemStart: itemStart)
        if odd && packed.isEmpty { throw error(.invalidPackedString, at: itemStart) }
        let characterCount = packed.count * 2 - (odd ? 1 : 0)
        var characters: [UInt8] = []
        characters.reserveCapacity(characterCount)
        for index in 0..<characterCount {
            let byte = packed[packed.startIndex + index / 2]
            let nibble = index % 2 == 0 ? byte >> 4 : byte & 0x0F
            if hex {
                characters.append(PackedAlphabet.hexCharacter(nibble))
            } else if let character = PackedAlphabet.nibbleCharacter(nibble) {
                characters.append(character)
            } else {
                throw error(.invalidPackedString, at: itemStart)
            }
        }
        return String(decoding: characters, as: UTF8.self)
    }

    // MARK: JIDs

    /// Reads the JID item introduced by `typeByte`; nil when `typeByte` is not a JID type.
    private mutating func readJID(_ typeByte: UInt8, itemStart: Int) throws(BinaryDecodingError) -> JID? {
        switch typeByte {
        case BinaryTag.jidPair:
            let user = try readJIDPart(itemStart: itemStart)
            let server = try readJIDPart(itemStart: itemStart)
            guard !server.isEmpty else { throw error(.invalidJID, at: itemStart) }
            return JID(user: user, server: JID.Server(rawValue: server))
        case BinaryTag.adJID:
            let domain = try readByte()
            let device = try readByte()
            let user = try readJIDPart(itemStart: itemStart)
            return switch domain {
            case 0: JID(user: user, device: UInt16(device), server: .phoneNumber)
            case 1: JID(user: user, device: UInt16(device), server: .lid)
            case 128: JID(user: user, device: UInt16(device), server: .hosted)
            case 129: JID(user: user, device: UInt16(device), server: .hostedLID)
            default: JID(user: user, rawAgent: domain, device: UInt16(device), server: .phoneNumber)
            }
        case BinaryTag.fbJID:
            let user = try readJIDPart(itemStart: itemStart)
            let device = UInt16(truncatingIfNeeded: try readInteger(width: 2))
            let server = try readJIDPart(itemStart: itemStart)
            guard server == JID.Server.messenger.rawValue else { throw error(.invalidJID, at: itemStart) }
            return JID(user: user, device: device, server: .messenger)
        case BinaryTag.interopJID:
            let user = try readJIDPart(itemStart: itemStart)
            let device = UInt16(truncatingIfNeeded: try readInteger(width: 2))
            let integrator = UInt16(truncatingIfNeeded: try readInteger(width: 2))
            let server = try readJIDPart(itemStart: itemStart)
            guard server == JID.Server.interop.rawValue else { throw error(.invalidJID, at: itemStart) }
            return JID(user: user, device: device, integrator: integrator, server: .interop)
        default:
            return nil
        }
    }

    /// Reads a string inside a JID item; nested JIDs and lists are rejected, so JIDs never recurse.
    private mutating func readJIDPart(itemStart: Int) throws(BinaryDecodingError) -> String {
        let partStart = position
        guard let string = try readString(try readByte(), itemStart: partStart) else {
            throw error(.invalidJID, at: itemStart)
        }
        return string
    }
}
