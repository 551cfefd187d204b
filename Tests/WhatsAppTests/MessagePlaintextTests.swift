import Foundation
import SwiftProtobuf
import Testing
import WAProto

@testable import WhatsApp

@Suite struct MessagePlaintextTests {
    @Test func paddingIsOneToFifteenBytesOfItsLengthAndComesOff() throws {
        var generator = SystemRandomNumberGenerator()
        var lengths: Set<Int> = []
        for _ in 0..<500 {
            let body = Array("hello".utf8)
            let padded = MessagePadding.pad(body, using: &generator)
            let length = padded.count - body.count
            lengths.insert(length)
            #expect((1...15).contains(length))
            #expect(padded.suffix(length).allSatisfy { Int($0) == length })
            #expect(try MessagePadding.unpad(padded) == body)
        }
        #expect(lengths.count > 10, "the pad length varies")
        for bad: [UInt8] in [[], [0], [1, 2, 3, 9], [0x10]] {
            #expect(throws: MessagePlaintextError.self) { try MessagePadding.unpad(bad) }
        }
    }

    @Test func textRoundTripsAndReadsLikeTheWireSays() throws {
        let encoded = MessagePlaintext.encodeText("héllo 👋")
        #expect(encoded == [0x0A, 0x0B] + Array("héllo 👋".utf8), "field 1 (conversation), length-delimited")
        #expect(try MessagePlaintext(decoding: encoded) == MessagePlaintext(text: "héllo 👋"))

        var extended = Wa_Message()
        extended.extendedTextMessage.text = "with a link https://example.com"
        #expect(try MessagePlaintext(decoding: try extended.serializedBytes()).text == "with a link https://example.com")

        let withKey = MessagePlaintext.encodeText("first in the group", senderKeyDistribution: ("120363@g.us", [1, 2, 3]))
        let decoded = try MessagePlaintext(decoding: withKey)
        #expect(decoded.text == "first in the group")
        #expect(decoded.senderKeyDistribution?.groupID == "120363@g.us")
        #expect(decoded.senderKeyDistribution?.distribution == [1, 2, 3])
    }

    @Test func aCopyForOurOtherDevicesNamesItsChat() throws {
        let inner = MessagePlaintext.encodeText("sent from the API")
        let wrapped = try MessagePlaintext.encodeDeviceSent(inner, destination: "15551234567@s.whatsapp.net")
        let decoded = try MessagePlaintext(decoding: wrapped)
        #expect(decoded.text == "sent from the API")
        #expect(decoded.sentTo == "15551234567@s.whatsapp.net")
    }

    @Test func contentWeDoNotReadIsNamed() throws {
        // imageMessage (3) with an empty body, and an unknown field 77 holding a varint.
        let bytes: [UInt8] = [0x1A, 0x00, 0xE8, 0x04, 0x01]
        let decoded = try MessagePlaintext(decoding: bytes)
        #expect(decoded.text == nil)
        #expect(decoded.unsupported == ["imageMessage", "field_77"])
    }

    @Test func garbageIsRefusedNeverCrashes() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2_000 {
            let length = Int.random(in: 0...64, using: &generator)
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            _ = try? MessagePlaintext(decoding: bytes)
            _ = try? MessagePadding.unpad(bytes)
            _ = try? MessagePlaintext.fieldNames(in: bytes)
        }
        #expect(throws: MessagePlaintextError.self) { try MessagePlaintext.fieldNames(in: [0x0A, 0x05, 0x01]) }
        #expect(throws: MessagePlaintextError.self) { try MessagePlaintext.fieldNames(in: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]) }
        #expect(throws: MessagePlaintextError.self) { try MessagePlaintext.fieldNames(in: [0x0B]) }
    }
}
