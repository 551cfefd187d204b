import Testing
import WahostBasics

@testable import WABinary

/// Malformed, truncated and random input: every failure is a typed error, never a crash or a hang.
@Suite struct HostileInputTests {
    @Test(arguments: [
        ("", BinaryDecodingError.Reason.truncated, 0),
        ("F8", .truncated, 1),
        ("F9 01", .truncated, 1),
        ("00", .emptyNode, 0),
        ("F8 00", .emptyNode, 0),
        ("19", .expectedList, 0),
        ("FC 01 61", .expectedList, 0),
        ("F8 02 19", .lengthExceedsInput, 0),
        ("F9 FF FF 19", .lengthExceedsInput, 0),
        ("F8 01 00", .invalidNodeTag, 2),
        ("F8 01 F0", .invalidNodeTag, 2),
        ("F8 01 F8 01 19", .invalidNodeTag, 2),
        ("F8 01 FA 00 03", .invalidNodeTag, 2),
        ("F8 01 EC", .truncated, 3),
        ("F8 03 19 00 19", .invalidAttributeKey, 3),
        ("F8 03 19 FA 00 03 19", .invalidAttributeKey, 3),
        ("F8 03 19 08 F8", .invalidAttributeValue, 4),
        ("F8 03 19 08 F0", .invalidAttributeValue, 4),
        ("F8 02 19 F0", .invalidTypeByte, 3),
        ("F8 02 19 F4", .invalidTypeByte, 3),
        ("F8 02 19 FC 05 61", .lengthExceedsInput, 3),
        ("F8 02 19 FD FF FF FF 61", .lengthExceedsInput, 3),
        ("F8 02 19 FE FF FF FF FF 61", .lengthExceedsInput, 3),
        ("F8 02 19 FE 00 00", .truncated, 4),
        ("F8 02 19 F8 FF 00 00", .lengthExceedsInput, 3),
        ("F8 02 19 F9 FF FF 00 00", .lengthExceedsInput, 3),
        ("F8 02 19 F8 01 00", .lengthExceedsInput, 3),
        ("F8 02 19 F8 01 F8 01 EC", .truncated, 8),
        ("F8 01 19 19", .trailingBytes, 3),
        ("F8 03 19 11 FA 00 00", .invalidJID, 4),
        ("F8 03 19 11 FA 00", .truncated, 6),
        ("F8 03 19 11 FA FA 00 03 03", .invalidJID, 4),
        ("F8 03 19 11 FA F8 01 03", .invalidJID, 4),
        ("F8 03 19 11 F7 00", .truncated, 6),
        ("F8 03 19 11 F7 00 05", .truncated, 7),
        ("F8 03 19 11 F6 FF 81 1F 00 01 03", .invalidJID, 4),
        ("F8 03 19 11 F5 FF 81 1F 00 01 00 02 03", .invalidJID, 4),
        ("F8 03 19 11 F5 FF 81 1F 00 01", .truncated, 10),
    ])
    func malformedInputs(hex: String, reason: BinaryDecodingError.Reason, offset: Int) {
        let error = decodeError(hexBytes(hex))
        #expect(error?.reason == reason, "\(hex): \(String(describing: error))")
        #expect(error?.offset == offset, "\(hex): \(String(describing: error))")
    }

    @Test func offsetsCountFromTheSliceStart() throws {
        let bytes: [UInt8] = [0xAA, 0xAA, 0xF8, 0x01, 0x19, 0x19]
        let error = decodingError { () throws(BinaryDecodingError) -> Node in try NodeDecoder().decode(bytes[2...]) }
        #expect(error == BinaryDecodingError(.trailingBytes, offset: 3))
        #expect(try NodeDecoder().decode(bytes[2..<5]) == Node(tag: "iq"))
    }

    /// `depth` nested nodes, each `<iq>` with one child.
    func nested(_ depth: Int) -> [UInt8] {
        var bytes: [UInt8] = []
        for _ in 1..<depth { bytes += [0xF8, 0x02, 0x19, 0xF8, 0x01] }
        return bytes + [0xF8, 0x01, 0x19]
    }

    @Test func nestingIsBounded() throws {
        let atLimit = try NodeDecoder().decode(nested(64))
        var depth = 1
        var node = atLimit
        while let child = node.children.first {
            depth += 1
            node = child
        }
        #expect(depth == 64)
        #expect(decodeError(nested(65))?.reason == .nestingTooDeep)
        #expect(decodeError(nested(65))?.offset == 64 * 5)
        #expect(decodeError(nested(10), maximumDepth: 9)?.reason == .nestingTooDeep)
        // Deep hostile nesting far beyond the bound fails fast instead of exhausting the stack.
        #expect(decodeError(nested(100_000))?.reason == .nestingTooDeep)
    }

    @Test func invalidUTF8InStringsIsReplacedNotFatal() throws {
        let node = try NodeDecoder().decode([0xF8, 0x03, 0xFC, 0x01, 0xFF, 0x08, 0xFC, 0x02, 0xC3, 0x28])
        #expect(node.tag == "\u{FFFD}")
        #expect(node.attributes["id"] == .string("\u{FFFD}("))
    }

    @Test func everyTruncationOfValidNodesFails() throws {
        var builder = RandomNodeBuilder(generator: SeededGenerator(seed: 42), maximumDepth: 4)
        for _ in 0..<60 {
            let bytes = try NodeEncoder().encode(builder.node())
            for length in 0..<bytes.count {
                #expect(decodeError(Array(bytes[0..<length])) != nil, "prefix \(length) of \(hexString(bytes))")
            }
        }
    }

    @Test func mutatedValidNodesNeverCrash() throws {
        var builder = RandomNodeBuilder(generator: SeededGenerator(seed: 99), maximumDepth: 5)
        var generator = SeededGenerator(seed: 100)
        var decoded = 0
        for _ in 0..<3000 {
            var bytes = try NodeEncoder().encode(builder.node())
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                let index = Int.random(in: 0..<bytes.count, using: &generator)
                bytes[index] = UInt8.random(in: 0...255, using: &generator)
            }
            if let node = try? NodeDecoder().decode(bytes) {
                decoded += 1
                #expect(nodeCount(node) <= bytes.count / 3 + 1)
                // Whatever decodes re-encodes, and that encoding is stable.
                let reencoded = try NodeEncoder().encode(node)
                #expect(try NodeEncoder().encode(NodeDecoder().decode(reencoded)) == reencoded)
            }
        }
        #expect(decoded > 0)
    }

    @Test func randomGarbageThroughDecoderAndReassembler() throws {
        var generator = SeededGenerator(seed: 0xDEC0DE)
        let starts: [UInt8] = [0xF8, 0xF9, 0x00, 0xFA, 0xF7, 0xFC, 0xFF]
        var decodedCount = 0
        for iteration in 0..<20_000 {
            var bytes = generator.bytes(count: Int.random(in: 0...64, using: &generator))
            if !bytes.isEmpty && iteration % 2 == 0 {
                bytes[0] = starts.randomElement(using: &generator)!
                if bytes.count > 1 && bytes[0] == 0xF8 { bytes[1] = UInt8.random(in: 1...12, using: &generator) }
            }
            if let node = try? NodeDecoder().decode(bytes) {
                decodedCount += 1
                #expect(nodeCount(node) <= bytes.count / 3 + 1)
                _ = try NodeEncoder().encode(node)
            }
            if let node = try? FramePlaintext.unpack(bytes, maximumInflatedSize: 1 << 16) {
                #expect(nodeCount(node) <= (1 << 16) / 3 + 1)
            }

            var reassembler = FrameReassembler(maximumFrameSize: iteration % 3 == 0 ? 40 : 1 << 24)
            var delivered = 0
            var offset = 0
            do throws(FrameError) {
                while offset < bytes.count {
                    let size = Int.random(in: 1...8, using: &generator)
                    let end = min(offset + size, bytes.count)
                    let frames = try reassembler.append(bytes[offset..<end])
                    delivered += frames.reduce(0) { $0 + 3 + $1.count }
                    offset = end
                    #expect(reassembler.bufferedByteCount <= 3 + reassembler.maximumFrameSize)
                }
                #expect(delivered + reassembler.bufferedByteCount == bytes.count)
            } catch {
                #expect(error.reason == .frameTooLarge)
                #expect(error.length > reassembler.maximumFrameSize)
            }
        }
        #expect(decodedCount > 0)
    }
}
