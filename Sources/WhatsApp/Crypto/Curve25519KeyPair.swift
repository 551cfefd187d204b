import Crypto
import Foundation

/// A raw X25519 key pair: 32-byte private scalar and 32-byte Montgomery public key.
///
/// The same pair does Diffie-Hellman (``sharedSecret(with:)``) and libsignal-style signing (``XEdDSA``).
/// `description` shows the public key only, so the private key never reaches a log by accident.
public struct Curve25519KeyPair: Sendable, Codable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    /// The 32-byte private key (clamped when generated here).
    public let privateKey: [UInt8]
    /// The 32-byte public key (X25519 base-point multiple), without libsignal's `0x05` prefix.
    public let publicKey: [UInt8]

    /// Generates a fresh key pair from the system CSPRNG, with the private key clamped as libsignal does.
    public static func generate() -> Curve25519KeyPair {
        let key = Curve25519.KeyAgreement.PrivateKey()
        var bytes = Array(key.rawRepresentation)
        bytes[0] &= 248
        bytes[31] &= 127
        bytes[31] |= 64
        // X25519 clamps the scalar itself, so clamping leaves the public key as it is: one base-point
        // multiplication per pair instead of two (pairing generates 812 of them).
        return Curve25519KeyPair(trustedPrivateKey: bytes, publicKey: Array(key.publicKey.rawRepresentation))
    }

    /// A pair whose halves are known to belong together (generated here, or read back from sealed storage).
    init(trustedPrivateKey privateKey: [UInt8], publicKey: [UInt8]) {
        self.privateKey = privateKey
        self.publicKey = publicKey
    }

    /// Rebuilds the pair from a 32-byte private key, deriving the public key.
    public init(privateKey: [UInt8]) throws {
        guard privateKey.count == 32,
            let key = try? Curve25519.KeyAgreement.PrivateKey(rawRepresentation: privateKey)
        else { throw XEdDSAError.invalidPrivateKey }
        self.privateKey = privateKey
        self.publicKey = Array(key.publicKey.rawRepresentation)
    }

    /// X25519 with `publicKey` (32 raw bytes); throws for a malformed or low-order public key.
    public func sharedSecret(with publicKey: [UInt8]) throws -> [UInt8] {
        guard publicKey.count == 32 else { throw XEdDSAError.invalidPublicKey }
        do {
            let mine = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: privateKey)
            let theirs = try Curve25519.KeyAgreement.PublicKey(rawRepresentation: publicKey)
            let secret = try mine.sharedSecretFromKeyAgreement(with: theirs)
            let bytes = secret.withUnsafeBytes { Array($0) }
            // An all-zero result means a low-order point; refuse it (BoringSSL already does, this is a backstop).
            guard bytes.contains(where: { $0 != 0 }) else { throw XEdDSAError.invalidPublicKey }
            return bytes
        } catch {
            throw XEdDSAError.invalidPublicKey
        }
    }

    /// Signs `message` with this pair's private key (libsignal Curve25519 signature, 64 bytes).
    public func sign(_ message: [UInt8]) throws -> [UInt8] {
        try XEdDSA.sign(privateKey: privateKey, message: message)
    }

    /// The public key in libsignal's serialized form, `0x05 || publicKey` (33 bytes).
    public var serializedPublicKey: [UInt8] { [0x05] + publicKey }

    public var description: String {
        "Curve25519KeyPair(public: \(publicKey.map { String(format: "%02x", $0) }.joined()))"
    }

    public var debugDescription: String { description }

    private enum CodingKeys: String, CodingKey {
        case privateKey
        case publicKey
    }

    /// Decodes a pair and checks that the stored public key matches the private key.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let privateKey = try container.decode([UInt8].self, forKey: .privateKey)
        let publicKey = try container.decode([UInt8].self, forKey: .publicKey)
        do {
            try self.init(privateKey: privateKey)
        } catch {
            throw DecodingError.dataCorruptedError(forKey: .privateKey, in: container, debugDescription: "not a 32-byte key")
        }
        guard self.publicKey == publicKey else {
            throw DecodingError.dataCorruptedError(
                forKey: .publicKey, in: container, debugDescription: "public key does not match the private key")
        }
    }
}
