import Crypto
import Foundation

/// RFC 6238 TOTP with the parameters authenticator apps use: HMAC-SHA1, 6 digits, 30 s steps.
public struct TOTP: Sendable {
    /// The raw shared secret (160 bits for new enrolments).
    public let secret: [UInt8]
    /// Digits per code.
    public static let digits = 6
    /// Seconds per time step.
    public static let stepSeconds: Int64 = 30
    /// Steps either side of the current one that are still accepted.
    public static let allowedSkewSteps: Int64 = 1
    /// Bytes in a new secret (160 bits, 32 base32 characters).
    public static let secretLength = 20

    public init(secret: [UInt8]) {
        self.secret = secret
    }

    /// A new random secret.
    public static func generateSecret() -> [UInt8] { SecureRandom.bytes(secretLength) }

    /// The time step that contains `date`.
    public static func step(at date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 / Double(stepSeconds)).rounded(.down))
    }

    /// The code for one time step, zero-padded to six digits.
    public func code(forStep step: Int64) -> String {
        var counter = UInt64(bitPattern: step).bigEndian
        let message = withUnsafeBytes(of: &counter) { Array($0) }
        let mac = Array(HMAC<Insecure.SHA1>.authenticationCode(for: message, using: SymmetricKey(data: secret)))
        let offset = Int(mac[mac.count - 1] & 0x0F)
        let truncated = (UInt32(mac[offset] & 0x7F) << 24) | (UInt32(mac[offset + 1]) << 16)
            | (UInt32(mac[offset + 2]) << 8) | UInt32(mac[offset + 3])
        let value = truncated % 1_000_000
        let text = String(value)
        return String(repeating: "0", count: Self.digits - text.count) + text
    }

    /// The step within ±1 of `date` whose code equals `code` (compared in constant time), or nil.
    public func matchingStep(for code: String, at date: Date) -> Int64? {
        guard code.utf8.count == Self.digits, code.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
        let current = Self.step(at: date)
        var found: Int64?
        for step in (current - Self.allowedSkewSteps)...(current + Self.allowedSkewSteps)
        where constantTimeEqual(Array(self.code(forStep: step).utf8), Array(code.utf8)) {
            found = step
        }
        return found
    }

    /// The `otpauth://totp/…` URI that authenticator apps scan.
    public func provisioningURI(account: String, issuer: String) -> String {
        let label = percentEncode(issuer) + ":" + percentEncode(account)
        return "otpauth://totp/\(label)?secret=\(Base32.encode(secret))&issuer=\(percentEncode(issuer))"
            + "&algorithm=SHA1&digits=\(Self.digits)&period=\(Self.stepSeconds)"
    }

    private func percentEncode(_ text: String) -> String {
        var output = ""
        for byte in text.utf8 {
            let unreserved = (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "~")
            output += unreserved ? String(UnicodeScalar(byte)) : String(format: "%%%02X", byte)
        }
        return output
    }
}

/// Compares two byte strings in time that depends only on their lengths.
public func constantTimeEqual(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
    guard lhs.count == rhs.count else { return false }
    var difference: UInt8 = 0
    for index in lhs.indices { difference |= lhs[index] ^ rhs[index] }
    return difference == 0
}
