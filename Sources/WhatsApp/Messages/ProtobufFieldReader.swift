/// A message plaintext could not be read.
public struct MessagePlaintextError: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// Walks the fields of protobuf bytes: field numbers only, values skipped; malformed input throws.
struct ProtobufFieldReader {
    private let bytes: [UInt8]
    private var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// The next field's number, or nil at the end.
    mutating func nextFieldNumber() throws(MessagePlaintextError) -> UInt64? {
        try nextField()?.number
    }

    /// The next field's number and, for a varint field, its value; nil at the end.
    mutating func nextField() throws(MessagePlaintextError) -> (number: UInt64, varint: UInt64?)? {
        guard offset < bytes.count else { return nil }
        let tag = try varint()
        let number = tag >> 3
        guard number > 0 else { throw MessagePlaintextError("protobuf field number 0") }
        switch tag & 7 {
        case 0: return (number, try varint())
        case 1: try skip(8)
        case 2:
            let length = try varint()
            guard length <= UInt64(bytes.count - offset) else { throw MessagePlaintextError("protobuf field longer than its message") }
            try skip(Int(length))
        case 5: try skip(4)
        default: throw MessagePlaintextError("protobuf wire type \(tag & 7) not supported")
        }
        return (number, nil)
    }

    private mutating func varint() throws(MessagePlaintextError) -> UInt64 {
        var value: UInt64 = 0
        for shift in stride(from: 0, to: 64, by: 7) {
            guard offset < bytes.count else { throw MessagePlaintextError("protobuf varint cut short") }
            let byte = bytes[offset]
            offset += 1
            value |= UInt64(byte & 0x7F) << UInt64(shift)
            if byte & 0x80 == 0 { return value }
        }
        throw MessagePlaintextError("protobuf varint too long")
    }

    private mutating func skip(_ count: Int) throws(MessagePlaintextError) {
        guard count <= bytes.count - offset else { throw MessagePlaintextError("protobuf field cut short") }
        offset += count
    }
}
