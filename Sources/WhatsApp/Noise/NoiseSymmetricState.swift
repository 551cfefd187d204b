import Crypto
import Foundation
import SwiftProtobuf
import WAProto

/// Noise's SymmetricState as WhatsApp uses it (docs/protocol-notes.md#noise-symmetric-state): one nonce counter shared by encryption and
/// decryption, reset to 0 by every MixKey; AD = h during the handshake.
///
/// Unlike textbook Noise, WhatsApp does not MixHash the (empty) payload of the first message: callers mix
/// exactly what docs/protocol-notes.md#noise-handshake lists and nothing else.
package struct NoiseSymmetricState: Sendable {
    /// The handshake hash `h`.
    package private(set) var hash: [UInt8]
    private var chainingKey: [UInt8]
    private var key: SymmetricKey?
    private var counter: UInt32 = 0

    /// Starts with a 32-byte protocol name used directly as `h` and `ck`, then mixes in the prologue.
    package init(protocolName: [UInt8], prologue: [UInt8]) {
        precondition(protocolName.count == 32, "protocol names longer than 32 bytes would be hashed")
        hash = protocolName
        chainingKey = protocolName
        mixHash(prologue)
    }

    /// `h = SHA256(h || data)`.
    package mutating func mixHash(_ data: [UInt8]) {
        var hasher = SHA256()
        hasher.update(data: hash)
        hasher.update(data: data)
        hash = Array(hasher.finalize())
    }

    /// `ck, k = HKDF(ikm, salt: ck)`; `n = 0`.
    package mutating func mixKey(_ inputKeyMaterial: [UInt8]) {
        let output = Self.hkdf(inputKeyMaterial, salt: chainingKey)
        chainingKey = Array(output[0..<32])
        key = SymmetricKey(data: output[32..<64])
        counter = 0
    }

    /// Encrypts with AD = h, advances the counter, mixes the ciphertext into h.
    package mutating func encryptAndHash(_ plaintext: [UInt8]) throws(NoiseHandshakeError) -> [UInt8] {
        guard let key else { throw .outOfOrder }
        guard let ciphertext = try? NoiseCipher.seal(plaintext, key: key, counter: counter, associatedData: hash) else {
            throw .internalFailure
        }
        counter += 1
        mixHash(ciphertext)
        return ciphertext
    }

    /// Decrypts with AD = h, advances the counter (even on failure), mixes the ciphertext into h; nil on failure.
    package mutating func decryptAndHash(_ ciphertext: [UInt8]) -> [UInt8]? {
        guard let key else { return nil }
        let plaintext = NoiseCipher.open(ciphertext, key: key, counter: counter, associatedData: hash)
        counter += 1
        guard let plaintext else { return nil }
        mixHash(ciphertext)
        return plaintext
    }

    /// `HKDF(empty, salt: ck)`: the initiator's write key first, the responder's second.
    package func split() -> (initiatorToResponder: SymmetricKey, responderToInitiator: SymmetricKey) {
        let output = Self.hkdf([], salt: chainingKey)
        return (SymmetricKey(data: output[0..<32]), SymmetricKey(data: output[32..<64]))
    }

    private static func hkdf(_ inputKeyMaterial: [UInt8], salt: [UInt8]) -> [UInt8] {
        let derived = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: inputKeyMaterial), salt: salt, info: [UInt8](), outputByteCount: 64)
        return derived.withUnsafeBytes { Array($0) }
    }
}

extension Curve25519KeyPair {
    /// X25519 for the handshake, mapping any failure to `error`.
    package func agree(with publicKey: [UInt8], or error: NoiseHandshakeError) throws(NoiseHandshakeError) -> [UInt8] {
        guard let secret = try? sharedSecret(with: publicKey) else { throw error }
        return secret
    }
}

extension SwiftProtobuf.Message {
    /// Serialized bytes, mapping the (practically impossible) encoder failure to a handshake error.
    package func handshakeBytes() throws(NoiseHandshakeError) -> [UInt8] {
        guard let bytes: [UInt8] = try? serializedBytes() else { throw .internalFailure }
        return bytes
    }
}
