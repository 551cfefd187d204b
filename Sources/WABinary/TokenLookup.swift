// Reverse lookup for the generated token dictionaries in Tokens.swift.

extension Tokens {
    /// Where a token lives: `dictionary` is nil for single-byte tokens, else 0...3.
    struct Code: Sendable, Equatable {
        let dictionary: UInt8?
        let index: UInt8
    }

    /// Every token mapped to its wire code, built once on first use.
    static let codes: [String: Code] = {
        var table: [String: Code] = [:]
        table.reserveCapacity(singleByte.count + 4 * 256)
        for (index, token) in singleByte.enumerated() where index > 0 {
            table[token] = Code(dictionary: nil, index: UInt8(index))
        }
        for (dictionary, tokens) in [doubleByte0, doubleByte1, doubleByte2, doubleByte3].enumerated() {
            for (index, token) in tokens.enumerated() {
                table[token] = Code(dictionary: UInt8(dictionary), index: UInt8(index))
            }
        }
        return table
    }()

    /// The wire code for `string`, or nil when it is not a token.
    static func code(for string: String) -> Code? {
        codes[string]
    }

    /// The single-byte token for `byte` (1...235); nil outside that range.
    static func singleByteToken(_ byte: UInt8) -> String? {
        guard byte > 0, Int(byte) < singleByte.count else { return nil }
        return singleByte[Int(byte)]
    }

    /// The double-byte token at `index` of `dictionary` (0...3); nil for any other dictionary.
    static func doubleByteToken(dictionary: UInt8, index: UInt8) -> String? {
        switch dictionary {
        case 0: doubleByte0[Int(index)]
        case 1: doubleByte1[Int(index)]
        case 2: doubleByte2[Int(index)]
        case 3: doubleByte3[Int(index)]
        default: nil
        }
    }
}
