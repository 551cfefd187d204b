import Testing
import WahostBasics

@testable import WABinary

/// Builds random nodes from a seeded generator, and the form they take after a trip over the wire.
struct RandomNodeBuilder {
    var generator: SeededGenerator
    let maximumDepth: Int

    static let allTokens: [String] =
        Array(Tokens.singleByte.dropFirst()) + Tokens.doubleByte0 + Tokens.doubleByte1 + Tokens.doubleByte2
        + Tokens.doubleByte3

    mutating func pick<T>(_ values: [T]) -> T {
        values.randomElement(using: &generator)!
    }

    mutating func int(_ range: ClosedRange<Int>) -> Int {
        Int.random(in: range, using: &generator)
    }

    mutating func string() -> String {
        switch int(0...7) {
        case 0, 1: return pick(Self.allTokens)
        case 2: return String((0..<int(1...140)).map { _ in pick(Array("0123456789-.")) })
        case 3: return String((0..<int(1...140)).map { _ in pick(Array("0123456789ABCDEF")) })
        case 4: return String((0..<int(1...40)).map { _ in pick(Array("abcdefghijklmnopqrstuvwxyz:_@ ")) })
        case 5: return String((0..<int(1...10)).map { _ in pick(Array("äöü€😀x\u{0}")) })
        case 6: return String(repeating: "raw-", count: int(60...80))
        default: return String(int(0...Int.max))
        }
    }

    mutating func jid() -> JID {
        let number = String(int(1...999_999_999_999))
        switch int(0...9) {
        case 0: return .whatsappServer
        case 1: return .phoneNumber(number)
        case 2: return .phoneNumber(number, device: UInt16(int(1...255)))
        case 3: return .lid(number, device: UInt16(int(0...255)))
        case 4: return .group(number)
        case 5: return .statusBroadcast
        case 6: return JID(user: number, device: UInt16(int(0...255)), server: pick([.hosted, .hostedLID]))
        case 7: return JID(user: number, device: UInt16(int(0...65535)), server: .messenger)
        case 8: return JID(user: number, device: UInt16(int(0...65535)), integrator: UInt16(int(0...65535)), server: .interop)
        default: return JID(user: number, rawAgent: UInt8(int(2...127)), device: UInt16(int(0...255)), server: .phoneNumber)
        }
    }

    mutating func node(depth: Int = 1) -> Node {
        var tag = string()
        if tag.isEmpty { tag = "x" }
        var attributes = Attributes()
        for _ in 0..<pick([0, 0, 1, 2, 3, 5, 20]) {
            var key = string()
            if key.isEmpty { key = "k" }
            let value: AttributeValue = int(0...3) == 0 ? .jid(jid()) : .string(int(0...15) == 0 ? "" : string())
            attributes.append(Attribute(key: key, value: value))
        }
        let content: Node.Content
        switch int(0...9) {
        case 0, 1, 2: content = .none
        case 3, 4, 5:
            if depth < maximumDepth {
                content = .nodes((0..<pick([0, 1, 2, 3, 8])).map { _ in node(depth: depth + 1) })
            } else {
                content = .none
            }
        case 6: content = .bytes(generator.bytes(count: pick([0, 1, 20, 255, 256, 1000])))
        case 7: content = .string(string())
        case 8: content = .jid(jid())
        default: content = .nodes([])
        }
        return Node(tag: tag, attributes: attributes, content: content)
    }

    /// True when the encoder writes `string` as a token or packed string, so it decodes as a string.
    static func staysString(_ string: String) -> Bool {
        if Tokens.code(for: string) != nil { return true }
        let utf8 = string.utf8
        guard (1...127).contains(utf8.count) else { return false }
        return utf8.allSatisfy { PackedAlphabet.nibble($0) != nil } || utf8.allSatisfy { PackedAlphabet.hex($0) != nil }
    }

    /// What `node` decodes to after encoding: empty-string attributes dropped, raw string content as bytes.
    static func wireForm(_ node: Node) -> Node {
        var result = node
        result.attributes = Attributes(node.attributes.filter { $0.value != .string("") })
        switch node.content {
        case .nodes(let children): result.content = .nodes(children.map(wireForm))
        case .string(let string) where !staysString(string): result.content = .bytes(Array(string.utf8))
        default: break
        }
        return result
    }
}

@Suite struct RoundTripTests {
    @Test func randomNodesRoundTrip() throws {
        var builder = RandomNodeBuilder(generator: SeededGenerator(seed: 0x5EED), maximumDepth: 6)
        let encoder = NodeEncoder()
        let decoder = NodeDecoder()
        for iteration in 0..<1500 {
            let node = builder.node()
            let bytes = try encoder.encode(node)
            let decoded = try decoder.decode(bytes)
            #expect(decoded == RandomNodeBuilder.wireForm(node), "iteration \(iteration)")
            // Re-encoding the decoded node gives the same bytes.
            #expect(try encoder.encode(decoded) == bytes, "iteration \(iteration)")
        }
    }

    @Test func contentKinds() throws {
        let cases: [Node] = [
            Node(tag: "a"),
            Node(tag: "a", children: []),
            Node(tag: "a", bytes: []),
            Node(tag: "a", bytes: [0xFF, 0x00, 0xFE]),
            Node(tag: "a", content: .string("result")),
            Node(tag: "a", content: .string("148.54-3")),
            Node(tag: "a", content: .jid(.lid("1", device: 2))),
            Node(tag: "unknown-tag-ä", attributes: ["k€y": "välue", "jid": .jid(.groupServer)], children: [Node(tag: "b")]),
        ]
        for node in cases {
            #expect(try NodeDecoder().decode(try NodeEncoder().encode(node)) == node)
        }
    }

    @Test func bytesStayBytes() throws {
        // BINARY content that happens to be valid UTF-8, even a token's text, still decodes as bytes.
        let node = Node(tag: "ref", bytes: Array("iq".utf8))
        let decoded = try NodeDecoder().decode(try NodeEncoder().encode(node))
        #expect(decoded.content == .bytes(Array("iq".utf8)))
        // Raw string content travels as BINARY and so comes back as bytes.
        let text = Node(tag: "body", content: .string("hello"))
        #expect(try NodeDecoder().decode(try NodeEncoder().encode(text)).content == .bytes(Array("hello".utf8)))
    }

    @Test(arguments: [
        (0, "FC 00"), (255, "FC FF"), (256, "FD 00 01 00"), (65_535, "FD 00 FF FF"),
        ((1 << 20) - 1, "FD 0F FF FF"), (1 << 20, "FE 00 10 00 00"),
    ])
    func binaryLengthForms(length: Int, header: String) throws {
        let node = Node(tag: "a", bytes: Array(repeating: 0xAB, count: length))
        let bytes = try NodeEncoder().encode(node)
        let headerBytes = hexBytes(header)
        let start = 2 + encodedString("a").count
        #expect(Array(bytes[start..<(start + headerBytes.count)]) == headerBytes)
        #expect(bytes.count == start + headerBytes.count + length)
        #expect(try NodeDecoder().decode(bytes) == node)
    }

    @Test func listSizeForms() throws {
        let wide = Node(tag: "a", children: Array(repeating: Node(tag: "b"), count: 300))
        let bytes = try NodeEncoder().encode(wide)
        let prefix: [UInt8] = [0xF8, 0x02] + encodedString("a") + [0xF9, 0x01, 0x2C]  // 300 children
        #expect(Array(bytes[0..<prefix.count]) == prefix)
        #expect(try NodeDecoder().decode(bytes) == wide)
        var many = Attributes()
        for index in 0..<200 { many.append(Attribute(key: "k\(index)", value: "v")) }
        let manyAttributes = Node(tag: "a", attributes: many)
        let encoded = try NodeEncoder().encode(manyAttributes)
        #expect(Array(encoded[0..<3]) == [0xF9, 0x01, 0x91])  // 1 + 2·200 = 401
        #expect(try NodeDecoder().decode(encoded) == manyAttributes)
    }

    @Test func emptyAttributeValuesAreOmitted() throws {
        let node = Node(tag: "iq", attributes: ["id": "", "type": "get"])
        #expect(try NodeEncoder().encode(node) == [0xF8, 0x03, 0x19, 0x04, 0x29])
    }

    @Test func encoderRefusals() {
        #expect(throws: BinaryEncodingError.self) { try NodeEncoder().encode(Node(tag: "")) }
        #expect(throws: BinaryEncodingError.self) { try NodeEncoder().encode(Node(tag: "a", attributes: ["": "v"])) }
        #expect(throws: BinaryEncodingError.self) {
            try NodeEncoder().encode(Node(tag: "a", children: Array(repeating: Node(tag: "b"), count: 65_536)))
        }
        var deep = Node(tag: "leaf")
        for _ in 1..<NodeDecoder.defaultMaximumDepth { deep = Node(tag: "n", children: [deep]) }
        #expect((try? NodeEncoder().encode(deep)) != nil)
        let tooDeep = Node(tag: "n", children: [deep])
        #expect {
            try NodeEncoder().encode(tooDeep)
        } throws: { error in
            (error as? BinaryEncodingError)?.reason == .nestingTooDeep
        }
    }
}

@Suite struct FootprintTests {
    @Test func nodesAreSmall() {
        // Tag (16) + attributes (8) + content (16 + tag byte): JIDs are boxed, so they don't widen every node.
        #expect(MemoryLayout<Node>.size <= 48)
        #expect(MemoryLayout<Node.Content>.size <= 17)
        #expect(MemoryLayout<AttributeValue>.size <= 17)
    }
}
