import Testing
import WahostBasics

@testable import WABinary

/// Nibble and hex packing (docs/protocol-notes.md#binary-strings), including odd lengths, empty strings and the 127 limit.
@Suite struct PackingTests {
    /// Decodes a string item by wrapping it as the tag of a childless node.
    func decodeStringItem(_ item: [UInt8]) throws -> String {
        try NodeDecoder().decode([0xF8, 0x01] + item).tag
    }

    @Test func emptyStringIsRawEmptyBinary() {
        #expect(encodedString("") == [0xFC, 0x00])
    }

    @Test func oddAndEvenNibbleStrings() {
        #expect(encodedString("5-") == [0xFF, 0x01, 0x5A])
        #expect(encodedString("9.") == [0xFF, 0x01, 0x9B])
        #expect(encodedString("5-1") == [0xFF, 0x82, 0x5A, 0x1F])
        #expect(encodedString("148.54-3") == hexBytes("FF 04 14 8B 54 A3"))
        #expect(encodedString("123") == hexBytes("FF 82 12 3F"))
    }

    @Test func hexIsUppercaseOnly() {
        #expect(encodedString("A") == [0xFB, 0x81, 0xAF])
        #expect(encodedString("1A") == [0xFB, 0x01, 0x1A])
        #expect(encodedString("ABCDEF") == hexBytes("FB 03 AB CD EF"))
        #expect(encodedString("abc") == hexBytes("FC 03 61 62 63"))
        #expect(encodedString("1.A") == hexBytes("FC 03 31 2E 41"))
    }

    @Test func longestPackedStringsAndOneBeyond() throws {
        let digits127 = String(repeating: "9", count: 127)
        let packed = encodedString(digits127)
        #expect(packed.count == 2 + 64)
        #expect(packed[0...1] == [0xFF, 0xC0])
        #expect(packed.last == 0x9F)
        #expect(try decodeStringItem(packed) == digits127)

        let digits126 = String(repeating: "1", count: 126)
        #expect(encodedString(digits126)[0...1] == [0xFF, 63])

        let digits128 = String(repeating: "7", count: 128)
        #expect(encodedString(digits128) == [0xFC, 128] + Array(digits128.utf8))

        let hex127 = String(repeating: "E", count: 127)
        #expect(encodedString(hex127)[0...1] == [0xFB, 0xC0])
        #expect(try decodeStringItem(encodedString(hex127)) == hex127)
        #expect(encodedString(hex127 + "E")[0] == 0xFC)
    }

    @Test func decoderAcceptsUpTo127PackedBytes() throws {
        let item: [UInt8] = [0xFF, 0x7F] + Array(repeating: 0x12, count: 127)
        #expect(try decodeStringItem(item) == String(repeating: "12", count: 127))
        let oddItem: [UInt8] = [0xFB, 0xFF] + Array(repeating: 0xAB, count: 127)
        #expect(try decodeStringItem(oddItem) == String(repeating: "AB", count: 126) + "A")
    }

    @Test func packedStringsOfEveryLengthRoundTrip() throws {
        var generator = SeededGenerator(seed: 7)
        let nibbleAlphabet = Array("0123456789-.")
        let hexAlphabet = Array("0123456789ABCDEF")
        for length in 1...130 {
            for alphabet in [nibbleAlphabet, hexAlphabet] {
                let string = String((0..<length).map { _ in alphabet.randomElement(using: &generator)! })
                let item = encodedString(string)
                #expect(try decodeStringItem(item) == string, "length \(length)")
                if length <= 127 && Tokens.code(for: string) == nil {
                    #expect(item[0] == 0xFF || item[0] == 0xFB)
                    #expect(Int(item[1] & 0x7F) == (length + 1) / 2)
                    #expect((item[1] & 0x80 != 0) == (length % 2 == 1))
                }
            }
        }
    }

    @Test func malformedPackedStringsAreErrors() {
        // Nibble values 12...14 are not characters.
        #expect(decodeError([0xF8, 0x01, 0xFF, 0x01, 0x1C])?.reason == .invalidPackedString)
        #expect(decodeError([0xF8, 0x01, 0xFF, 0x01, 0xE1])?.reason == .invalidPackedString)
        // A 15 is only allowed as the pad of an odd string.
        #expect(decodeError([0xF8, 0x01, 0xFF, 0x01, 0x1F])?.reason == .invalidPackedString)
        #expect(decodeError([0xF8, 0x01, 0xFF, 0x81, 0x1F]) == nil)
        // Odd flag with no bytes, and a length running past the input.
        #expect(decodeError([0xF8, 0x01, 0xFF, 0x80])?.reason == .invalidPackedString)
        #expect(decodeError([0xF8, 0x01, 0xFF, 0x05, 0x11])?.reason == .lengthExceedsInput)
        // An empty packed string is an empty tag.
        #expect(decodeError([0xF8, 0x01, 0xFF, 0x00])?.reason == .invalidNodeTag)
    }
}
