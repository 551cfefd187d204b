/// A phone number in international format, the one rule for every place that takes one (the pairing-code API,
/// the dashboard, and code pairing itself; docs/protocol-notes.md#link-code).
///
/// Digits only, country code first: no leading 0, more than 6 digits and at most 15 (E.164). With
/// `allowingSeparators` (the default), `+`, spaces, dashes, dots and parentheses are dropped first; any other
/// character is rejected.
package struct PhoneNumber: Hashable, Sendable, CustomStringConvertible {
    /// The digits, e.g. `910000000000`.
    package let digits: String

    /// Checks and normalises `text`; without `allowingSeparators`, only the bare digits are accepted.
    package init(_ text: String, allowingSeparators: Bool = true) throws(PhoneNumberError) {
        let separators: Set<UInt8> = allowingSeparators ? Set("+ -.()".utf8) : []
        var digits: [UInt8] = []
        for byte in text.utf8 where !separators.contains(byte) {
            guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { throw PhoneNumberError("not digits") }
            digits.append(byte)
        }
        guard digits.count > 6 else { throw PhoneNumberError("6 digits or fewer") }
        guard digits.count <= 15 else { throw PhoneNumberError("more than 15 digits") }
        guard digits.first != UInt8(ascii: "0") else { throw PhoneNumberError("leading 0, not international") }
        self.digits = String(decoding: digits, as: UTF8.self)
    }

    /// The digits.
    package var description: String { digits }
}

/// Why a phone number was refused; the text names the rule, never the number.
package struct PhoneNumberError: Error, Hashable, Sendable, CustomStringConvertible {
    package let description: String
    package init(_ description: String) { self.description = description }
}
