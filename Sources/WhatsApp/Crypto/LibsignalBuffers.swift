import CSignal

// Moving bytes in and out of libsignal-protocol-c: one home for the XEdDSA provider and the Signal store callbacks.

/// A copy of `length` bytes at `pointer` (none for a null pointer or zero length).
func bufferBytes(_ pointer: UnsafePointer<UInt8>?, _ length: Int) -> [UInt8] {
    guard length > 0, let pointer else { return [] }
    return Array(UnsafeBufferPointer(start: pointer, count: length))
}

/// The bytes of a libsignal buffer.
func signalBytes(_ buffer: OpaquePointer?) -> [UInt8] {
    guard let buffer else { return [] }
    return bufferBytes(signal_buffer_const_data(buffer), signal_buffer_len(buffer))
}

/// A new libsignal buffer holding `bytes` (its receiver frees it); nil when out of memory.
func signalBuffer(_ bytes: [UInt8]) -> OpaquePointer? {
    withNonEmptyPointer(bytes) { signal_buffer_create($0, $1) }
}

/// Hands `bytes` to libsignal through an output parameter: 0, or `SG_ERR_NOMEM`.
func storeBuffer(_ bytes: [UInt8], into output: UnsafeMutablePointer<OpaquePointer?>) -> Int32 {
    guard let buffer = signalBuffer(bytes) else { return SG_ERR_NOMEM }
    output.pointee = buffer
    return 0
}

/// Calls `body` with a non-null pointer to `bytes` (libsignal dereferences the pointer even for length 0).
func withNonEmptyPointer<R>(_ bytes: [UInt8], _ body: (UnsafePointer<UInt8>, Int) -> R) -> R {
    let storage = bytes.isEmpty ? [0] : bytes
    return storage.withUnsafeBufferPointer { buffer in
        // A non-empty array always has storage.
        guard let base = buffer.baseAddress else { preconditionFailure("non-empty array without storage") }
        return body(base, bytes.count)
    }
}
