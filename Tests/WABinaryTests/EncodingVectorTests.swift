import Testing

@testable import WABinary

/// Worked encoding examples, byte for byte (docs/protocol-notes.md#test-vectors).
@Suite struct EncodingVectorTests {
    static let keepalive = Node(
        tag: "iq",
        attributes: ["id": "148.54-3", "xmlns": "w:p", "type": "get", "to": .jid(.whatsappServer)]
    )

    @Test func keepaliveWithoutChild() throws {
        let bytes = try FramePlaintext.pack(Self.keepalive)
        #expect(hexString(bytes) == "00 F8 09 19 08 FF 04 14 8B 54 A3 16 57 04 29 11 FA 00 03")
        #expect(try FramePlaintext.unpack(bytes) == Self.keepalive)
    }

    @Test func keepaliveWithPingChild() throws {
        var node = Self.keepalive
        node.content = .nodes([Node(tag: "ping")])
        let bytes = try FramePlaintext.pack(node)
        #expect(hexString(bytes) == "00 F8 0A 19 08 FF 04 14 8B 54 A3 16 57 04 29 11 FA 00 03 F8 01 F8 01 56")
        #expect(try FramePlaintext.unpack(bytes) == node)
    }

    @Test func groupListQuery() throws {
        let node = Node(
            tag: "iq",
            attributes: ["to": .jid(.groupServer), "xmlns": "w:g2", "type": "get", "id": "148.54-4"],
            children: [Node(tag: "participating", children: [Node(tag: "participants"), Node(tag: "description")])]
        )
        let bytes = try FramePlaintext.pack(node)
        #expect(
            hexString(bytes)
                == "00 F8 0A 19 11 FA 00 1C 16 ED 33 04 29 08 FF 04 14 8B 54 A4 F8 01 F8 02 ED 78 F8 02 F8 01 6B F8 01 B7"
        )
        #expect(try FramePlaintext.unpack(bytes) == node)
    }

    @Test func passiveActive() throws {
        let node = Node(
            tag: "iq",
            attributes: ["to": .jid(.whatsappServer), "xmlns": "passive", "type": "set", "id": "148.54-5"],
            children: [Node(tag: "active")]
        )
        let bytes = try FramePlaintext.pack(node)
        #expect(hexString(bytes) == "00 F8 0A 19 11 FA 00 03 16 EC 18 04 5A 08 FF 04 14 8B 54 A5 F8 01 F8 01 EC 01")
        #expect(try FramePlaintext.unpack(bytes) == node)
    }

    @Test(arguments: [
        ("1234567890:5@s.whatsapp.net", "F7 00 05 FF 05 12 34 56 78 90"),
        ("98765:5@lid", "F7 01 05 FF 83 98 76 5F"),
        ("1234567890@s.whatsapp.net", "FA FF 05 12 34 56 78 90 03"),
        ("120363012345678901@g.us", "FA FF 09 12 03 63 01 23 45 67 89 01 1C"),
    ])
    func jidEncodings(text: String, expected: String) throws {
        let jid = try JID(parsing: text)
        #expect(hexString(try encodedJID(jid)) == expected)
        // The same item decodes back as an attribute value.
        let node = Node(tag: "iq", attributes: ["to": .jid(jid)])
        let decoded = try NodeDecoder().decode(try NodeEncoder().encode(node))
        #expect(decoded.attributes["to"] == .jid(jid))
        #expect(decoded.attributes["to"]?.description == text)
    }

    @Test(arguments: [
        ("hello", "FC 05 68 65 6C 6C 6F"),
        ("3EB0D58F", "FB 04 3E B0 D5 8F"),
        ("123", "FF 82 12 3F"),
    ])
    func stringEncodings(string: String, expected: String) {
        #expect(hexString(encodedString(string)) == expected)
    }

    @Test func serverJIDIsFA0003() throws {
        #expect(try encodedJID(.whatsappServer) == [0xFA, 0x00, 0x03])
        #expect(try encodedJID(JID(parsing: "@s.whatsapp.net")) == [0xFA, 0x00, 0x03])
    }

    @Test func tokensAreFoundInBothDictionaryKinds() {
        #expect(encodedString("iq") == [0x19])
        #expect(encodedString("passive") == [0xEC, 0x18])
        #expect(encodedString("w:g2") == [0xED, 0x33])
        // Every token encodes to its own code and decodes back.
        for (index, token) in Tokens.singleByte.enumerated() where index > 0 {
            #expect(encodedString(token) == [UInt8(index)])
        }
        for (dictionary, tokens) in [Tokens.doubleByte0, Tokens.doubleByte1, Tokens.doubleByte2, Tokens.doubleByte3]
            .enumerated()
        {
            for (index, token) in tokens.enumerated() {
                #expect(encodedString(token) == [0xEC + UInt8(dictionary), UInt8(index)])
            }
        }
        #expect(Tokens.codes.count == 235 + 4 * 256)
    }

    @Test func connectionHeader() {
        #expect(FrameEncoder.connectionHeader == [0x57, 0x41, 0x06, 0x03])
    }
}
