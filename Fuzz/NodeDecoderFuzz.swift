// libFuzzer target for WABinary's NodeDecoder.
//
// scripts/fuzz.sh compiles this file together with the WABinary sources that need only the
// standard library into one module, so the module's types are used without an import.
// Beyond "no crash, no hang, no leak", it checks that whatever decodes also re-encodes, and that
// the re-encoding is stable under another decode/encode round.

@_cdecl("LLVMFuzzerTestOneInput")
public func nodeDecoderFuzzInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    guard let node = try? NodeDecoder().decode(bytes) else { return 0 }
    let encoder = NodeEncoder()
    let encoded: [UInt8]
    do {
        encoded = try encoder.encode(node)
    } catch {
        fatalError("a decoded node does not re-encode: \(error)")
    }
    do {
        let again = try encoder.encode(try NodeDecoder().decode(encoded))
        precondition(again == encoded, "re-encoding is not stable")
    } catch {
        fatalError("a re-encoded node does not decode or encode: \(error)")
    }
    return 0
}
