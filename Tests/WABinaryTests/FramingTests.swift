import CompressNIO
import NIOCore
import Testing
import WahostBasics

@testable import WABinary

@Suite struct FrameReassemblerTests {
    static let payloads: [[UInt8]] = [[], [1, 2, 3, 4, 5], Array((0..<300).map { UInt8(truncatingIfNeeded: $0) }), [9]]

    static var stream: [UInt8] {
        payloads.flatMap { try! FrameEncoder.frame($0) }
    }

    func reassemble(_ chunks: [ArraySlice<UInt8>], maximumFrameSize: Int = 1 << 24) throws -> [[UInt8]] {
        var reassembler = FrameReassembler(maximumFrameSize: maximumFrameSize)
        var frames: [[UInt8]] = []
        for chunk in chunks {
            frames += try reassembler.append(chunk)
        }
        #expect(reassembler.bufferedByteCount == 0)
        return frames
    }

    @Test func wholeStreamInOneChunk() throws {
        #expect(try reassemble([Self.stream[...]]) == Self.payloads)
    }

    @Test func oneByteAtATime() throws {
        let stream = Self.stream
        #expect(try reassemble(stream.indices.map { stream[$0...$0] }) == Self.payloads)
    }

    @Test func everySingleSplitPoint() throws {
        let stream = Self.stream
        for split in 0...stream.count {
            #expect(try reassemble([stream[..<split], stream[split...]]) == Self.payloads, "split at \(split)")
        }
    }

    @Test func everyPairOfSplitPoints() throws {
        let payloads: [[UInt8]] = [[], [7], [1, 2, 3, 4], [0xAA, 0xBB]]
        let stream = payloads.flatMap { try! FrameEncoder.frame($0) }
        for first in 0...stream.count {
            for second in first...stream.count {
                let chunks = [stream[..<first], stream[first..<second], stream[second...]]
                #expect(try reassemble(chunks) == payloads, "splits \(first), \(second)")
            }
        }
    }

    @Test func randomChunking() throws {
        var generator = SeededGenerator(seed: 3)
        var payloads: [[UInt8]] = []
        for _ in 0..<40 {
            payloads.append(generator.bytes(count: Int.random(in: 0...3000, using: &generator)))
        }
        let stream = payloads.flatMap { try! FrameEncoder.frame($0) }
        for _ in 0..<50 {
            var chunks: [ArraySlice<UInt8>] = []
            var offset = 0
            while offset < stream.count {
                let end = min(stream.count, offset + Int.random(in: 1...5000, using: &generator))
                chunks.append(stream[offset..<end])
                offset = end
            }
            #expect(try reassemble(chunks) == payloads)
        }
    }

    @Test func partialFrameStaysBuffered() throws {
        var reassembler = FrameReassembler()
        #expect(try reassembler.append([0x00, 0x00]).isEmpty)
        #expect(reassembler.bufferedByteCount == 2)
        #expect(try reassembler.append([0x04, 1, 2]).isEmpty)
        #expect(reassembler.bufferedByteCount == 5)
        #expect(try reassembler.append([3, 4, 0x00]) == [[1, 2, 3, 4]])
        #expect(reassembler.bufferedByteCount == 1)
    }

    @Test func largestThreeByteLengthIsAccepted() throws {
        var reassembler = FrameReassembler()
        #expect(try reassembler.append([0xFF, 0xFF, 0xFF] + Array(repeating: 0, count: 10)).isEmpty)
        #expect(reassembler.bufferedByteCount == 13)
    }

    @Test func oversizeFrameIsATypedErrorAndSticks() throws {
        var reassembler = FrameReassembler(maximumFrameSize: 10)
        #expect(try reassembler.append([0x00, 0x00, 0x0A] + Array(repeating: 1, count: 10)).count == 1)
        #expect(try reassembler.append([0x00, 0x00]).isEmpty)
        #expect {
            _ = try reassembler.append([0x0B, 1, 2])
        } throws: { error in
            (error as? FrameError) == FrameError(.frameTooLarge, length: 11, limit: 10)
        }
        #expect(throws: FrameError.self) { _ = try reassembler.append([0x00, 0x00, 0x01, 0x05]) }
    }

    @Test func byteBufferInput() throws {
        var reassembler = FrameReassembler()
        var buffer = ByteBuffer(bytes: [0xEE] + Self.stream)
        buffer.moveReaderIndex(forwardBy: 1)
        #expect(try reassembler.append(buffer) == Self.payloads)
    }

    @Test func nonContiguousInput() throws {
        var reassembler = FrameReassembler()
        #expect(try reassembler.append(Self.stream.lazy.map { $0 }) == Self.payloads)
    }
}

@Suite struct FrameEncoderTests {
    @Test func connectionHeaderGoesBeforeTheFirstFrameOnly() throws {
        var encoder = FrameEncoder(firstFramePrefix: FrameEncoder.connectionHeader)
        #expect(encoder.isFirstFrame)
        #expect(try encoder.encode([0xAB, 0xCD]) == [0x57, 0x41, 0x06, 0x03, 0x00, 0x00, 0x02, 0xAB, 0xCD])
        #expect(!encoder.isFirstFrame)
        #expect(try encoder.encode([0x01]) == [0x00, 0x00, 0x01, 0x01])
        var plain = FrameEncoder()
        #expect(try plain.encode([]) == [0x00, 0x00, 0x00])
    }

    @Test func lengthIsThreeBytesBigEndian() throws {
        let payload = Array(repeating: UInt8(7), count: 0x01_02_03)
        let frame = try FrameEncoder.frame(payload)
        #expect(Array(frame[0..<3]) == [0x01, 0x02, 0x03])
        #expect(frame.count == 3 + payload.count)
    }

    @Test func payloadTooLarge() {
        #expect(throws: FrameError.self) { try FrameEncoder.frame(repeatElement(UInt8(0), count: 1 << 24)) }
        #expect((try? FrameEncoder.frame(repeatElement(UInt8(0), count: (1 << 24) - 1)))?.count == (1 << 24) + 2)
    }
}

@Suite struct FramePlaintextTests {
    static let keepalive = EncodingVectorTests.keepalive

    /// zlib.compress(keepalive node, 9) from Python's zlib, an independent implementation.
    static let compressedKeepalive = hexBytes("78dafbc129c9f19f45a43b64b158388ba6e02f06660039600564")

    /// zlib.compress(bytes(4096), 9) from Python's zlib.
    static let compressedZeros = hexBytes("78daedc1010d000000c2a0f74f6d0f0714000000f06e10000001")

    @Test func uncompressed() throws {
        #expect(try FramePlaintext.unpack(FramePlaintext.pack(Self.keepalive)) == Self.keepalive)
    }

    @Test func zlibFlagInflates() throws {
        #expect(try FramePlaintext.unpack([0x02] + Self.compressedKeepalive) == Self.keepalive)
        // Other flag bits are ignored.
        #expect(try FramePlaintext.unpack([0x03] + Self.compressedKeepalive) == Self.keepalive)
        #expect(try FramePlaintext.unpack([0xFD] + FramePlaintext.pack(Self.keepalive).dropFirst()) == Self.keepalive)
    }

    @Test func compressedBytesWithoutTheFlagAreNotANode() {
        #expect(throws: BinaryDecodingError.self) { try FramePlaintext.unpack([0x00] + Self.compressedKeepalive) }
    }

    func unpackError(_ plaintext: [UInt8], maximumInflatedSize: Int = FramePlaintext.defaultMaximumInflatedSize)
        -> BinaryDecodingError?
    {
        decodingError { () throws(BinaryDecodingError) -> Node in
            try FramePlaintext.unpack(plaintext, maximumInflatedSize: maximumInflatedSize)
        }
    }

    @Test func emptyAndCorruptFrames() {
        #expect(unpackError([]) == BinaryDecodingError(.emptyFrame, offset: 0))
        #expect(unpackError([0x02])?.reason == .decompressionFailed)
        #expect(unpackError([0x02] + Array("not zlib at all".utf8))?.reason == .decompressionFailed)
        var corrupt = Self.compressedKeepalive
        corrupt[5] ^= 0xFF
        #expect(unpackError([0x02] + corrupt) != nil)
        // A truncated stream, even one missing only part of its checksum, is an error.
        for length in 1..<Self.compressedKeepalive.count {
            let error = unpackError([0x02] + Self.compressedKeepalive[0..<length])
            #expect(error?.reason == .decompressionFailed, "length \(length)")
        }
        // Bytes after the end of the zlib stream are ignored.
        #expect(unpackError([0x02] + Self.compressedKeepalive + [0x00, 0x01]) == nil)
    }

    @Test func inflatedSizeIsBounded() {
        // 4096 zero bytes inflate fine under the default limit (and are then not a node: list size 0).
        #expect(unpackError([0x02] + Self.compressedZeros)?.reason == .emptyNode)
        #expect(unpackError([0x02] + Self.compressedZeros, maximumInflatedSize: 4096)?.reason == .emptyNode)
        #expect(
            unpackError([0x02] + Self.compressedZeros, maximumInflatedSize: 4095)
                == BinaryDecodingError(.inflatedTooLarge, offset: 1)
        )
    }

    @Test func zipBombIsRefused() throws {
        var zeros = ByteBuffer(repeating: 0, count: (1 << 24) + 1)
        let bomb = try zeros.compress(with: .zlib())
        #expect(bomb.readableBytes < 100_000)
        #expect(unpackError([0x02] + Array(bomb.readableBytesView))?.reason == .inflatedTooLarge)
    }
}
