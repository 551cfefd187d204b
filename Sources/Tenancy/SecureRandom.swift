import Crypto
import Foundation

/// Cryptographically secure random bytes.
public enum SecureRandom {
    /// `count` random bytes from the system's CSPRNG.
    public static func bytes(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
    }

    /// `count` random bytes as unpadded base64url (tokens, secrets).
    public static func base64URL(_ count: Int) -> String { base64URL(encoding: bytes(count)) }

    /// `bytes` as unpadded base64url.
    public static func base64URL(encoding bytes: some Sequence<UInt8>) -> String {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }
}
