// Type/tag bytes of the binary XML encoding (docs/protocol-notes.md#binary-tags).

enum BinaryTag {
    static let listEmpty: UInt8 = 0x00
    static let dictionary0: UInt8 = 0xEC
    static let dictionary3: UInt8 = 0xEF
    static let interopJID: UInt8 = 0xF5
    static let fbJID: UInt8 = 0xF6
    static let adJID: UInt8 = 0xF7
    static let list8: UInt8 = 0xF8
    static let list16: UInt8 = 0xF9
    static let jidPair: UInt8 = 0xFA
    static let hex8: UInt8 = 0xFB
    static let binary8: UInt8 = 0xFC
    static let binary20: UInt8 = 0xFD
    static let binary32: UInt8 = 0xFE
    static let nibble8: UInt8 = 0xFF

    /// The longest string the encoders pack as NIBBLE_8 or HEX_8.
    static let packedMaximum = 127
}

/// Character alphabets of the two packed string formats.
enum PackedAlphabet {
    /// Nibble value for a NIBBLE_8 character (`0-9`, `-`, `.`), or nil.
    static func nibble(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte &- UInt8(ascii: "0")
        case UInt8(ascii: "-"): 10
        case UInt8(ascii: "."): 11
        default: nil
        }
    }

    /// Nibble value for a HEX_8 character (`0-9`, `A-F`, uppercase only), or nil.
    static func hex(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte &- UInt8(ascii: "0")
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte &- UInt8(ascii: "A") &+ 10
        default: nil
        }
    }

    /// The character for a NIBBLE_8 value; nil for 12...15.
    static func nibbleCharacter(_ value: UInt8) -> UInt8? {
        switch value {
        case 0...9: UInt8(ascii: "0") &+ value
        case 10: UInt8(ascii: "-")
        case 11: UInt8(ascii: ".")
        default: nil
        }
    }

    /// The character for a HEX_8 value (always defined for 0...15).
    static func hexCharacter(_ value: UInt8) -> UInt8 {
        value < 10 ? UInt8(ascii: "0") &+ value : UInt8(ascii: "A") &+ (value &- 10)
    }
}
