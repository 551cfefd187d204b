import Testing

@testable import WABinary

@Suite struct AttributeReaderTests {
    let node = Node(
        tag: "success",
        attributes: [
            "t": "1700000000", "count": "-3", "big": "18446744073709551615", "flag": "true", "zero": "0",
            "lid": .jid(.lid("98765", device: 17)), "from": "1234@s.whatsapp.net", "junk": "12x",
        ]
    )

    @Test func readsTypedValues() throws {
        var reader = node.attributeReader
        #expect(reader.string("t") == "1700000000")
        #expect(reader.int("count") == -3)
        #expect(reader.uint64("big") == UInt64.max)
        #expect(reader.bool("flag") == true)
        #expect(reader.bool("zero") == false)
        #expect(reader.jid("lid") == .lid("98765", device: 17))
        #expect(reader.jid("from") == .phoneNumber("1234"))
        #expect(reader.string("lid") == "98765:17@lid")
        #expect(reader.optionalInt("absent") == nil)
        #expect(reader.optionalJID("absent") == nil)
        #expect(reader.optionalBool("flag") == true)
        #expect(reader.optionalUInt64("t") == 1_700_000_000)
        #expect(reader.optionalString("absent") == nil)
        #expect(reader.isValid)
        try reader.check()
    }

    @Test func collectsEveryProblem() {
        var reader = AttributeReader(node)
        #expect(reader.string("missing") == "")
        #expect(reader.int("junk") == 0)
        #expect(reader.uint64("count") == 0)
        #expect(reader.bool("t") == false)
        #expect(reader.jid("junk") == .empty)
        #expect(reader.optionalInt("flag") == nil)
        #expect(reader.int("big") == 0)
        #expect(reader.optionalString("t") == "1700000000")
        #expect(reader.errors.map(\.key) == ["missing", "junk", "count", "t", "junk", "flag", "big"])
        #expect(reader.errors.first?.reason == .missing)
        #expect(reader.errors.dropFirst().allSatisfy { $0.reason == .malformed })
        #expect(reader.errors[1].description == "<success> attribute junk=\"12x\" is malformed")
        #expect(throws: AttributeError.self) { try reader.check() }
    }

    @Test func attributesKeepOrderAndSupportEditing() {
        var attributes: Attributes = ["b": "1", "a": "2"]
        attributes["c"] = "3"
        attributes["b"] = "4"
        #expect(attributes.map(\.key) == ["b", "a", "c"])
        #expect(attributes["b"] == "4")
        attributes["a"] = nil
        #expect(attributes.map(\.key) == ["b", "c"])
        attributes.append(Attribute(key: "b", value: "dup"))
        #expect(attributes["b"] == "4")
        #expect(attributes.count == 3)
    }

    @Test func childLookup() {
        let tree = Node(
            tag: "iq",
            children: [
                Node(tag: "groups", children: [Node(tag: "group", attributes: ["id": "1"]), Node(tag: "group", attributes: ["id": "2"])]),
                Node(tag: "ref", bytes: Array("abc".utf8)),
            ]
        )
        #expect(tree.child("groups")?.children("group").count == 2)
        #expect(tree.child(path: "groups", "group")?.attributes["id"] == "1")
        #expect(tree.child(path: "groups", "nothing") == nil)
        #expect(tree.child("ref")?.contentBytes == Array("abc".utf8))
        #expect(Node(tag: "x", content: .string("hi")).contentBytes == Array("hi".utf8))
        #expect(tree.child("ref")?.children.isEmpty == true)
        #expect(tree.description == "<iq><groups><group id=\"1\"/><group id=\"2\"/></groups><ref>0x616263</ref></iq>")
    }
}
