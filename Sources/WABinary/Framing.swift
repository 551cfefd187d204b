// The transport framing (docs/protocol-notes.md#framing): every frame is a 3-byte big-endian length and a payload.

/// Splits a byte stream that arrives in arbitrary chunks into complete frames.
///
/// WebSocket messages do not line up with frames: one message may hold several frames, and a frame
/// (even its 3-byte length) may be split across messages. Feed every message to `append(_:)` in
/// order; it returns the payloads completed so far. Only the frame being filled is buffered (at
/// most `maximumFrameSize` bytes plus 2 header bytes), each input byte is copied once, and the
/// stream is not trusted: a declared length above `maximumFrameSize` is a `FrameError`, after which
/// the reassembler stays failed (the stream cannot be resynchronised) and every later call throws.
///
/// The 4-byte WA connection header, which only the client sends and only once, is not part of the
/// framing; a server-side reader must remove it before feeding the stream here.
public struct FrameReassembler: Sendable {
    /// Declared lengths above this are rejected; at most `FrameEncoder.maximumPayloadSize`.
    public let maximumFrameSize: Int

    private var headerValue = 0
    private var headerBytesRead = 0
    private var payload: [UInt8] = []
    private var expectedLength = 0
    private var failure: FrameError?

    /// A reassembler rejecting frames longer than `maximumFrameSize` (default 16 MiB, WhatsApp's limit).
    public init(maximumFrameSize: Int = FrameEncoder.frameLimit) {
        self.maximumFrameSize = min(max(maximumFrameSize, 0), FrameEncoder.maximumPayloadSize)
    }

    /// Bytes received that belong to a frame not yet complete.
    public var bufferedByteCount: Int { headerBytesRead + payload.count }

    /// Adds the next chunk of the stream and returns the payloads of the frames it completes, in order.
    ///
    /// For a NIO `ByteBuffer`, pass `buffer.readableBytesView`.
    public mutating func append(_ chunk: some Collection<UInt8>) throws(FrameError) -> [[UInt8]] {
        if let failure { throw failure }
        var frames: [[UInt8]] = []
        let handled: Void? = chunk.withContiguousStorageIfAvailable { bytes in
            consume(bytes, into: &frames)
        }
        if handled == nil {
            Array(chunk).withUnsafeBufferPointer { consume($0, into: &frames) }
        }
        if let failure { throw failure }
        return frames
    }

    private mutating func consume(_ bytes: UnsafeBufferPointer<UInt8>, into frames: inout [[UInt8]]) {
        var index = 0
        let end = bytes.count
        while index < end {
            if headerBytesRead < 3 {
                headerValue = headerValue << 8 | Int(bytes[index])
                headerBytesRead += 1
                index += 1
                guard headerBytesRead == 3 else { continue }
                guard headerValue <= maximumFrameSize else {
                    failure = FrameError(.frameTooLarge, length: headerValue, limit: maximumFrameSize)
                    return
                }
                expectedLength = headerValue
                if expectedLength == 0 {
                    frames.append([])
                    resetHeader()
                } else if end - index >= expectedLength {
                    // The whole payload is in this chunk: copy it straight out.
                    frames.append(Array(bytes[index..<(index + expectedLength)]))
                    index += expectedLength
                    resetHeader()
                }
                continue
            }
            let take = min(expectedLength - payload.count, end - index)
            payload.append(contentsOf: bytes[index..<(index + take)])
            index += take
            if payload.count == expectedLength {
                var complete: [UInt8] = []
                swap(&complete, &payload)
                frames.append(complete)
                resetHeader()
            }
        }
    }

    private mutating func resetHeader() {
        headerValue = 0
        headerBytesRead = 0
        expectedLength = 0
    }
}

/// Prefixes payloads with their 3-byte length, and the first one with an optional introduction.
///
/// The client must send the 4-byte WA connection header (`FrameEncoder.connectionHeader`) in
/// front of its first frame, in the same WebSocket message, and never again: pass it as
/// `firstFramePrefix` and the encoder puts it before the first frame only. A server leaves it empty.
public struct FrameEncoder: Sendable {
    /// The WA connection header `57 41 06 03`: "WA", magic 6, dictionary version 3.
    public static let connectionHeader: [UInt8] = [0x57, 0x41, 0x06, Tokens.dictionaryVersion]
    /// The largest payload a 3-byte length can describe: 2^24 − 1 bytes.
    public static let maximumPayloadSize = frameLimit - 1
    /// WhatsApp's frame limit, 16 MiB; WebSocket messages carrying frames are allowed the same.
    public static let frameLimit = 1 << 24

    private var pendingPrefix: [UInt8]

    /// An encoder that writes `firstFramePrefix` (e.g. `connectionHeader`) before the first frame only.
    public init(firstFramePrefix: [UInt8] = []) {
        self.pendingPrefix = firstFramePrefix
    }

    /// True until the first frame has been encoded.
    public var isFirstFrame: Bool { !pendingPrefix.isEmpty }

    /// The next frame for `payload`: the pending prefix (first frame only), the 3-byte length, the payload.
    public mutating func encode(_ payload: some Collection<UInt8>) throws(FrameError) -> [UInt8] {
        var frame = pendingPrefix
        try Self.appendFrame(payload, to: &frame)
        pendingPrefix = []
        return frame
    }

    /// One frame for `payload` with no prefix: the 3-byte big-endian length, then the payload.
    public static func frame(_ payload: some Collection<UInt8>) throws(FrameError) -> [UInt8] {
        var frame: [UInt8] = []
        try appendFrame(payload, to: &frame)
        return frame
    }

    private static func appendFrame(_ payload: some Collection<UInt8>, to frame: inout [UInt8]) throws(FrameError) {
        let length = payload.count
        guard length <= FrameEncoder.maximumPayloadSize else {
            throw FrameError(.payloadTooLarge, length: length, limit: FrameEncoder.maximumPayloadSize)
        }
        frame.reserveCapacity(frame.count + 3 + length)
        frame.append(UInt8(length >> 16))
        frame.append(UInt8((length >> 8) & 0xFF))
        frame.append(UInt8(length & 0xFF))
        frame.append(contentsOf: payload)
    }
}

/// A frame whose length is over the limit, on the way in or out.
public struct FrameError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What is wrong with the frame.
    public struct Reason: Hashable, Sendable, CustomStringConvertible {
        private enum Value: String, Sendable {
            case frameTooLarge = "incoming frame declares a length above the limit"
            case payloadTooLarge = "outgoing payload does not fit a 3-byte length"
        }

        private let value: Value
        private init(_ value: Value) { self.value = value }

        /// A short description of the problem.
        public var description: String { value.rawValue }

        /// An incoming frame header declares more bytes than the reassembler accepts.
        public static let frameTooLarge = Reason(.frameTooLarge)
        /// An outgoing payload is longer than 2^24 − 1 bytes.
        public static let payloadTooLarge = Reason(.payloadTooLarge)
    }

    /// What is wrong.
    public let reason: Reason
    /// The declared or actual length.
    public let length: Int
    /// The limit it exceeds.
    public let limit: Int

    init(_ reason: Reason, length: Int, limit: Int) {
        self.reason = reason
        self.length = length
        self.limit = limit
    }

    /// A message naming the problem and the sizes.
    public var description: String { "\(reason): \(length) > \(limit) bytes" }
}
