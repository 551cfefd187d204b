import WABinary

/// Small helpers shared by the pairing and link-code tests.
enum PairingTestSupport {
    /// Bytes from a hex string; spaces are ignored. Test inputs only.
    static func bytes(hex: String) -> [UInt8] {
        let digits = Array(hex.filter { !$0.isWhitespace }.utf8)
        precondition(digits.count.isMultiple(of: 2), "odd hex length")
        return stride(from: 0, to: digits.count, by: 2).map { index in
            UInt8(String(decoding: digits[index..<index + 2], as: UTF8.self), radix: 16) ?? 0
        }
    }

    /// Lowercase hex of `bytes`.
    static func hex(_ bytes: [UInt8]) -> String {
        bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }

    /// `node` after a trip through the binary encoder and decoder, as it would cross the wire.
    static func overTheWire(_ node: Node) throws -> Node {
        try NodeDecoder().decode(NodeEncoder().encode(node))
    }
}
