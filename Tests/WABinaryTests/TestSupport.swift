@testable import WABinary

/// Bytes from a hex string such as `"F8 09 19"` (spaces ignored).
func hexBytes(_ text: String) -> [UInt8] {
    let digits = text.filter { !$0.isWhitespace }
    precondition(digits.count % 2 == 0, "odd hex string")
    var bytes: [UInt8] = []
    var index = digits.startIndex
    while index < digits.endIndex {
        let next = digits.index(index, offsetBy: 2)
        bytes.append(UInt8(digits[index..<next], radix: 16)!)
        index = next
    }
    return bytes
}

/// Upper-case hex with a space between bytes, for readable expectation failures.
func hexString(_ bytes: some Sequence<UInt8>) -> String {
    bytes.map { byte in
        let text = String(byte, radix: 16, uppercase: true)
        return byte < 16 ? "0" + text : text
    }.joined(separator: " ")
}

/// The error `body` throws, or nil.
func decodingError(_ body: () throws(BinaryDecodingError) -> Node) -> BinaryDecodingError? {
    do {
        _ = try body()
        return nil
    } catch {
        return error
    }
}

/// Decodes `bytes` and returns the error, or nil when decoding succeeds.
func decodeError(_ bytes: [UInt8], maximumDepth: Int = NodeDecoder.defaultMaximumDepth) -> BinaryDecodingError? {
    decodingError { () throws(BinaryDecodingError) -> Node in
        try NodeDecoder(maximumDepth: maximumDepth).decode(bytes)
    }
}

/// The bytes the internal writer produces for one string item.
func encodedString(_ string: String) -> [UInt8] {
    var writer = BinaryWriter()
    writer.writeString(string)
    return writer.bytes
}

/// The bytes the internal writer produces for one JID item.
func encodedJID(_ jid: JID) throws(BinaryEncodingError) -> [UInt8] {
    var writer = BinaryWriter()
    try writer.writeJID(jid, tag: "test")
    return writer.bytes
}

/// The number of nodes in a tree.
func nodeCount(_ node: Node) -> Int {
    1 + node.children.reduce(0) { $0 + nodeCount($1) }
}
