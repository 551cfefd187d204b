// libFuzzer target for WABinary's FrameReassembler.
//
// scripts/fuzz.sh compiles this file together with the WABinary sources that need only the
// standard library into one module, so the module's types are used without an import.
// Input layout: byte 0 picks the frame size limit (× 64 bytes), byte 1 seeds the chunk sizes,
// the rest is the stream. The stream is fed once whole and once in varying chunks; both must
// yield the same frames (or the same error), and no bytes may appear or vanish.

@_cdecl("LLVMFuzzerTestOneInput")
public func frameReassemblerFuzzInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    guard bytes.count >= 2 else { return 0 }
    let limit = Int(bytes[0]) * 64
    var step = Int(bytes[1] % 17) + 1
    let stream = bytes[2...]

    var whole = FrameReassembler(maximumFrameSize: limit)
    let reference = Result { () throws(FrameError) -> [[UInt8]] in try whole.append(stream) }

    var chunked = FrameReassembler(maximumFrameSize: limit)
    var frames: [[UInt8]] = []
    var failure: FrameError?
    var offset = stream.startIndex
    while offset < stream.endIndex {
        let end = min(offset + step, stream.endIndex)
        do {
            frames += try chunked.append(stream[offset..<end])
        } catch {
            failure = error
            break
        }
        precondition(chunked.bufferedByteCount <= 3 + chunked.maximumFrameSize, "buffer over its bound")
        offset = end
        step = (step * 7 + 3) % 23 + 1
    }

    switch reference {
    case .success(let expected):
        precondition(failure == nil, "chunked feeding failed where whole feeding did not")
        precondition(frames == expected, "chunking changed the frames")
        precondition(chunked.bufferedByteCount == whole.bufferedByteCount, "chunking changed the buffered bytes")
        let delivered = expected.reduce(0) { $0 + 3 + $1.count }
        precondition(delivered + whole.bufferedByteCount == stream.count, "bytes appeared or vanished")
    case .failure(let error):
        precondition(failure == error, "chunked feeding did not fail like whole feeding")
    }
    return 0
}
