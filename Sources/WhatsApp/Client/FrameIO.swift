import NIOCore
import NIOWebSocket
import WABinary
import WSClient

/// What a connection's writer task does next; both the client and the simulator queue these.
public enum OutgoingFrame: Sendable {
    /// Write one frame.
    case frame([UInt8])
    /// Write frames in one WebSocket message (one socket write: a receipt and its ack).
    case frames([[UInt8]])
    /// Close the socket after the frames queued before.
    case close

    /// Writes queued frames in order until `.close`, the end of the queue, or a failed write.
    public static func write(_ queue: AsyncStream<OutgoingFrame>, to outbound: WebSocketOutboundWriter) async {
        for await item in queue {
            switch item {
            case .frame(let frame):
                do { try await outbound.write(.binary(ByteBuffer(bytes: frame))) } catch { return }
            case .frames(let frames):
                var buffer = ByteBuffer()
                buffer.reserveCapacity(frames.reduce(0) { $0 + $1.count })
                for frame in frames { buffer.writeBytes(frame) }
                do { try await outbound.write(.binary(buffer)) } catch { return }
            case .close:
                try? await outbound.close(.normalClosure, reason: nil)
                return
            }
        }
    }
}

/// The peer's first bytes were not the connection header (docs/protocol-notes.md#connection-header).
public struct ConnectionHeaderError: Error, Sendable, CustomStringConvertible {
    public var description: String { "connection header mismatch" }
}

/// Complete frames from a socket, in order, reassembled across and within WebSocket messages; on the server side
/// it first checks and strips the 4-byte connection header the client sends before its first frame.
public struct FrameReader {
    private var messages: WebSocketInboundMessageStream.AsyncIterator
    private var reassembler = FrameReassembler()
    private var ready: [[UInt8]] = []
    private var readyIndex = 0
    private var headerBytesLeft: [UInt8]

    /// Reads `inbound`; `expectingHeader` is the connection header to strip first (empty on the client side).
    public init(inbound: WebSocketInboundStream, expectingHeader: [UInt8] = []) {
        messages = inbound.messages(maxSize: 1 << 24).makeAsyncIterator()
        headerBytesLeft = expectingHeader
    }

    /// The next frame, or nil when the socket closed.
    public mutating func next() async throws -> [UInt8]? {
        while readyIndex == ready.count {
            ready.removeAll(keepingCapacity: true)
            readyIndex = 0
            guard let message = try await messages.next() else { return nil }
            guard case .binary(let buffer) = message else { continue }
            var bytes = buffer.readableBytesView[...]
            while !headerBytesLeft.isEmpty, let first = bytes.first {
                guard first == headerBytesLeft.removeFirst() else { throw ConnectionHeaderError() }
                bytes = bytes.dropFirst()
            }
            ready = try reassembler.append(bytes)
        }
        defer { readyIndex += 1 }
        return ready[readyIndex]
    }
}
