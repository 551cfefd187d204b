import Foundation
import Testing
import WABinary

@testable import WhatsApp

@Suite struct MessageStanzaTests {
    let alice = JID.phoneNumber("15550000001", device: 3)
    let group = JID.group("120363000000000001")

    /// Through the real binary codec, as the stanza arrives from the socket.
    func wire(_ node: Node) throws -> Node { try NodeDecoder().decode(try NodeEncoder().encode(node)) }

    @Test func aOneToOneMessageIsReadWithItsPayload() throws {
        let node = try wire(
            Node(
                tag: "message", attributes: ["from": .jid(alice), "id": "3EB0AABBCCDDEEFF0011", "t": "1800000000", "type": "text", "notify": "Alice"],
                children: [Node(tag: "enc", attributes: ["v": "2", "type": "pkmsg"], bytes: [0x33, 1, 2, 3])]))
        let message = try IncomingMessage(parsing: node)
        #expect(message.id == "3EB0AABBCCDDEEFF0011")
        #expect(message.chat == JID.phoneNumber("15550000001"))
        #expect(message.sender == alice)
        #expect(message.timestamp == 1_800_000_000)
        #expect(message.pushName == "Alice")
        #expect(message.payloads == [EncryptedPayload(kind: .preKeyMessage, bytes: [0x33, 1, 2, 3])])
        #expect(!message.isGroup)
        let receipt = message.deliveryReceipt
        #expect(receipt.tag == "receipt" && receipt.attributes["to"]?.jid == JID.phoneNumber("15550000001"))
        #expect(receipt.attributes["participant"] == nil && receipt.attributes["type"] == nil)
    }

    @Test func aGroupMessageNamesItsSenderAndCarriesTheSenderKeyFirst() throws {
        let lid = JID.lid("123456789", device: 2)
        let node = try wire(
            Node(
                tag: "message",
                attributes: [
                    "from": .jid(group), "participant": .jid(lid), "participant_pn": .jid(JID.phoneNumber("15550000009")), "id": "ABC",
                    "t": "5", "addressing_mode": "lid",
                ],
                children: [
                    Node(tag: "enc", attributes: ["v": "2", "type": "pkmsg"], bytes: [1]),
                    Node(tag: "enc", attributes: ["v": "2", "type": "skmsg"], bytes: [2]),
                ]))
        let message = try IncomingMessage(parsing: node)
        #expect(message.isGroup && message.chat == group && message.sender == lid)
        #expect(message.senderPhoneNumber == JID.phoneNumber("15550000009"))
        #expect(message.payloads.map(\.kind) == [.preKeyMessage, .senderKeyMessage])
        #expect(message.deliveryReceipt.attributes["participant"]?.jid == lid)
        let retry = message.retryReceipt(count: 1, registrationID: 0x0102_0304)
        #expect(retry.attributes["type"]?.string == "retry")
        #expect(retry.child("retry")?.attributes["count"]?.string == "1")
        #expect(retry.child("registration")?.contentBytes == [1, 2, 3, 4])
    }

    @Test func malformedMessagesAreRefused() throws {
        let enc = Node(tag: "enc", attributes: ["v": "2", "type": "msg"], bytes: [1])
        let cases: [Node] = [
            Node(tag: "receipt", attributes: ["from": .jid(alice), "id": "x"], children: [enc]),
            Node(tag: "message", attributes: ["from": .jid(alice)], children: [enc]),
            Node(tag: "message", attributes: ["id": "x"], children: [enc]),
            Node(tag: "message", attributes: ["from": .jid(alice), "id": "x"]),
            Node(tag: "message", attributes: ["from": .jid(group), "id": "x"], children: [enc]),
            Node(tag: "message", attributes: ["from": .jid(alice), "id": "x"], children: [Node(tag: "enc", attributes: ["type": "frank"], bytes: [1])]),
            Node(tag: "message", attributes: ["from": .jid(alice), "id": "x"], children: [Node(tag: "enc", attributes: ["type": "msg"])]),
            Node(tag: "message", attributes: ["from": .jid(alice), "id": .string(String(repeating: "i", count: 200))], children: [enc]),
            Node(tag: "message", attributes: ["from": "not a jid@@", "id": "x"], children: [enc]),
        ]
        for node in cases { #expect(throws: MessageStanzaError.self) { try IncomingMessage(parsing: node) } }
        let mixed = Node(
            tag: "message", attributes: ["from": .jid(alice), "id": "x"],
            children: [Node(tag: "enc", attributes: ["type": "msmsg"], bytes: [5]), enc])
        #expect(try IncomingMessage(parsing: mixed).payloads == [EncryptedPayload(kind: .message, bytes: [1])], "unknown types are skipped")
    }

    @Test func aFanOutCarriesOnePayloadPerDeviceAndTheIdentityOnlyWithAPrekeyMessage() throws {
        let bob0 = JID.phoneNumber("15550000002")
        let bob5 = JID.phoneNumber("15550000002", device: 5)
        let stanza = MessageStanzas.fanOut(
            id: "3EB01", to: JID.phoneNumber("15550000002"),
            payloads: [(bob0, EncryptedPayload(kind: .message, bytes: [1])), (bob5, EncryptedPayload(kind: .preKeyMessage, bytes: [2]))],
            deviceIdentity: [9, 9])
        let decoded = try wire(stanza)
        #expect(decoded.attributes["type"]?.string == "text")
        let targets = decoded.child("participants")?.children("to") ?? []
        #expect(targets.map { $0.attributes["jid"]?.jid } == [bob0, bob5])
        #expect(targets.map { $0.child("enc")?.attributes["type"]?.string } == ["msg", "pkmsg"])
        #expect(decoded.child("device-identity")?.contentBytes == [9, 9])

        let onlyMessages = MessageStanzas.fanOut(
            id: "3EB02", to: bob0, payloads: [(bob0, EncryptedPayload(kind: .message, bytes: [1]))], deviceIdentity: [9, 9])
        #expect(onlyMessages.child("device-identity") == nil)

        let groupSend = MessageStanzas.fanOut(
            id: "3EB03", to: group, payloads: [], groupPayload: EncryptedPayload(kind: .senderKeyMessage, bytes: [7]),
            participantHash: MessageStanzas.participantHash([bob5, bob0]), deviceIdentity: nil)
        #expect(groupSend.child("participants") == nil)
        #expect(groupSend.child("enc")?.attributes["type"]?.string == "skmsg")
        #expect(groupSend.attributes["phash"]?.string == MessageStanzas.participantHash([bob0, bob5]), "order does not matter")
        #expect(groupSend.attributes["phash"]?.string?.hasPrefix("2:") == true)
        #expect(groupSend.attributes["phash"]?.string?.count == 10)
    }

    @Test func idsAndAcks() throws {
        var generator = SystemRandomNumberGenerator()
        let ids = (0..<100).map { _ in MessageStanzas.newMessageID(using: &generator) }
        #expect(Set(ids).count == 100)
        #expect(ids.allSatisfy { $0.count == 20 && $0.hasPrefix("3EB0") && $0.allSatisfy { $0.isHexDigit && !$0.isLowercase } })
        let message = Node(tag: "message", attributes: ["from": .jid(group), "id": "M1", "participant": .jid(alice), "type": "text"])
        let ack = try #require(Stanzas.ack(for: message), "acks come from the one Stanzas.ack")
        #expect(ack.attributes["class"]?.string == "message" && ack.attributes["id"]?.string == "M1")
        #expect(ack.attributes["to"]?.jid == group && ack.attributes["participant"]?.jid == alice && ack.attributes["type"] == nil)
        let receipt = Node(tag: "receipt", attributes: ["from": .jid(alice), "id": "R1", "type": "read"])
        #expect(Stanzas.ack(for: receipt)?.attributes["type"]?.string == "read")
    }
}
