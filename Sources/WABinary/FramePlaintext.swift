// The plaintext of a decrypted transport frame: a flags byte, then one node (docs/protocol-notes.md#binary-frame-plaintext).

internal import CompressNIO
public import NIOCore

/// Packs a node into frame plaintext and unpacks frame plaintext (flags byte, optional zlib) into a node.
public enum FramePlaintext {
    /// The flags bit saying that the rest of the plaintext is zlib-compressed.
    public static let compressedFlag: UInt8 = 0x02
    /// The default limit on the inflated size of a compressed frame: 16 MiB.
    public static let defaultMaximumInflatedSize = FrameEncoder.frameLimit

    /// The plaintext for `node`: flags byte `0x00` (uncompressed), then the encoded node.
    public static func pack(_ node: Node, encoder: NodeEncoder = NodeEncoder()) throws(BinaryEncodingError) -> [UInt8] {
        var bytes: [UInt8] = [0x00]
        try encoder.encode(node, into: &bytes)
        return bytes
    }

    /// The node in `plaintext`, inflating it first when the flags byte has `compressedFlag` set.
    ///
    /// Offsets in decoding errors count from the first byte after the flags byte (of the inflated
    /// bytes when compressed); zlib failures report offset 1.
    public static func unpack(
        _ plaintext: [UInt8],
        decoder: NodeDecoder = NodeDecoder(),
        maximumInflatedSize: Int = defaultMaximumInflatedSize
    ) throws(BinaryDecodingError) -> Node {
        guard let flags = plaintext.first else { throw BinaryDecodingError(.emptyFrame, offset: 0) }
        let body = plaintext[1...]
        if flags & compressedFlag == 0 {
            return try decoder.decode(body)
        }
        let inflated = try inflate(body, maximumSize: maximumInflatedSize)
        return try decoder.decode(inflated)
    }

    /// Inflates zlib data (RFC 1950), refusing output larger than `maximumSize` bytes.
    ///
    /// The stream must be complete: data that ends before the zlib trailer is an error.
    /// Bytes after the end of the zlib stream are ignored, as zlib readers do.
    static func inflate(_ compressed: ArraySlice<UInt8>, maximumSize: Int) throws(BinaryDecodingError) -> [UInt8] {
        let failed = BinaryDecodingError(.decompressionFailed, offset: 1)
        // CompressNIO hands zlib the input's base address, so never give it an empty buffer.
        guard !compressed.isEmpty else { throw failed }
        var input = ByteBuffer(bytes: compressed)
        var output: [UInt8] = []
        let decompressor = CompressionAlgorithm.zlib().decompressor
        do {
            try decompressor.startStream()
        } catch {
            throw failed
        }
        defer { try? decompressor.finishStream() }

        while true {
            var window = ByteBuffer()
            window.reserveCapacity(Self.inflateWindowSize)
            let inputBefore = input.readableBytes
            let outcome = Self.inflateStep(decompressor, from: &input, to: &window)
            guard output.count + window.readableBytes <= maximumSize else {
                throw BinaryDecodingError(.inflatedTooLarge, offset: 1)
            }
            output.append(contentsOf: window.readableBytesView)
            switch outcome {
            case .windowFull:
                // A full window means progress; no progress at all would loop forever, so call it corrupt.
                if window.readableBytes == 0 && input.readableBytes == inputBefore { throw failed }
            case .needsInput, .failed:
                throw failed
            case .returned where input.readableBytes > 0:
                // zlib stopped before the end of the input: the stream ended and the rest is trailing data.
                return output
            case .returned:
                // All input used: either the stream ended, or it was cut short. One more call with no
                // input tells them apart (zlib repeats "stream end", or reports that it needs input).
                var probe = ByteBuffer()
                probe.reserveCapacity(64)
                guard case .returned = Self.inflateStep(decompressor, from: &input, to: &probe),
                    probe.readableBytes == 0
                else { throw failed }
                return output
            }
        }
    }

    /// Output is produced in windows of this many bytes.
    private static let inflateWindowSize = 1 << 16

    private enum InflateOutcome {
        /// zlib returned normally: the stream ended, or all input was used.
        case returned
        /// The output window is full; call again.
        case windowFull
        /// zlib can make no progress without more input.
        case needsInput
        /// The data is corrupt, or zlib failed.
        case failed
    }

    private static func inflateStep(
        _ decompressor: any NIODecompressor, from input: inout ByteBuffer, to window: inout ByteBuffer
    ) -> InflateOutcome {
        do {
            try decompressor.streamInflate(from: &input, to: &window)
            return .returned
        } catch let error as CompressNIOError where error == .bufferOverflow {
            return .windowFull
        } catch let error as CompressNIOError where error == .inputBufferOverflow {
            return .needsInput
        } catch {
            return .failed
        }
    }
}

extension FrameReassembler {
    /// Adds the readable bytes of `buffer` to the stream; see `append(_:)`.
    public mutating func append(_ buffer: ByteBuffer) throws(FrameError) -> [[UInt8]] {
        try append(buffer.readableBytesView)
    }
}
