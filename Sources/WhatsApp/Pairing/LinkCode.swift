// Pairing with a phone-number code ("link code"): the code itself and its key derivations (docs/protocol-notes.md#link-code).
//
// Companion:  LinkCodePairing → companion_hello → (hello response: ref) → PrimaryHello → LinkCodeCompletion
//             (persist the new ADV secret) → companion_finish → pair-success. The stanzas are in
//             LinkCodeStanzas.swift, the companion's state in LinkCodePairing.swift; the primary phone's side is
//             in the WhatsAppServerSide module.

import Crypto
import CryptoExtras
import Foundation
import WABinary
import WahostBasics

// MARK: - The code

/// An 8-character pairing code over `123456789ABCDEFGHJKLMNPQRSTVWXYZ` (no 0, I, O, U), from 5 bytes (docs/protocol-notes.md#link-code).
///
/// The key derivation always uses the bare 8 characters; `formatted` adds whatsmeow's dash for display.
/// `description` hides the code.
public struct LinkCode: Hashable, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// The 32 characters, in value order 0…31.
    public static let alphabet: [UInt8] = Array("123456789ABCDEFGHJKLMNPQRSTVWXYZ".utf8)

    /// The 8 bare characters, e.g. `M7SD8N86`.
    public let rawValue: String

    private init(unchecked rawValue: String) {
        self.rawValue = rawValue
    }

    /// The code for 5 bytes: RFC 4648 base32 bit order (MSB first, 5 bits a character, no padding) over `alphabet`.
    public init(encoding bytes: [UInt8]) throws(PairingError) {
        guard bytes.count == 5 else { throw PairingError(.invalidLinkCode, "needs exactly 5 bytes") }
        self.init(unchecked: Self.encode(bytes))
    }

    /// A code typed or chosen by a person: 8 alphabet characters, case-insensitive, optionally `XXXX-XXXX`.
    public init(_ text: String) throws(PairingError) {
        var characters = Array(text.uppercased().utf8)
        if characters.count == 9, characters[4] == UInt8(ascii: "-") { characters.remove(at: 4) }
        guard characters.count == 8, characters.allSatisfy({ Self.alphabet.contains($0) }) else { throw PairingError(.invalidLinkCode) }
        self.init(unchecked: String(decoding: characters, as: UTF8.self))
    }

    /// A code from 5 secure random bytes.
    public static func random() -> LinkCode {
        LinkCode(unchecked: encode(PairingRandom.bytes(5)))
    }

    /// Eight characters for five bytes: the 40 bits, 5 at a time from the most significant, as alphabet indices.
    private static func encode(_ bytes: [UInt8]) -> String {
        let value = bytes.prefix(5).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let characters = stride(from: 35, through: 0, by: -5).map { alphabet[Int((value >> UInt64($0)) & 0x1F)] }
        return String(decoding: characters, as: UTF8.self)
    }

    /// The code as `XXXX-XXXX`, for showing to the user.
    public var formatted: String { "\(rawValue.prefix(4))-\(rawValue.suffix(4))" }

    /// A placeholder; the code itself is a secret.
    public var description: String { "LinkCode(redacted)" }

    /// The same as `description`.
    public var debugDescription: String { description }
}

// MARK: - Crypto

/// The link-code key derivations and ciphers (docs/protocol-notes.md#link-code, #link-code-primary-hello).
package enum LinkCodeCrypto {
    /// PBKDF2 rounds: 2 << 16.
    package static let pbkdf2Rounds = 131_072
    /// salt(32) || iv(16) || AES-CTR(public key)(32).
    package static let wrappedKeyLength = 80
    /// bundleSalt(32) || bundleNonce(12) || AES-GCM(96-byte plaintext) with its 16-byte tag.
    package static let wrappedKeyBundleLength = 156
    package static let bundleInfo = Array("link_code_pairing_key_bundle_encryption_key".utf8)
    package static let advSecretInfo = Array("adv_secret".utf8)

    /// `PBKDF2-HMAC-SHA256(code, salt, 131072, 32)`.
    package static func codeKey(code: LinkCode, salt: [UInt8]) throws(PairingError) -> SymmetricKey {
        do {
            return try KDF.Insecure.PBKDF2.deriveKey(
                from: Array(code.rawValue.utf8), salt: salt, using: .sha256, outputByteCount: 32, unsafeUncheckedRounds: pbkdf2Rounds)
        } catch {
            throw PairingError(.keyDerivationFailed, "PBKDF2")
        }
    }

    /// `salt || iv || AES-256-CTR(codeKey, iv, publicKey)`; the IV is the full initial 128-bit counter block.
    package static func wrap(publicKey: [UInt8], code: LinkCode, salt: [UInt8], iv: [UInt8]) throws(PairingError) -> [UInt8] {
        guard publicKey.count == 32, salt.count == 32, iv.count == 16 else { throw PairingError(.invalidKeyLength, "link-code wrap input") }
        return salt + iv + (try ctr(publicKey, key: codeKey(code: code, salt: salt), iv: iv))
    }

    /// The 32-byte public key inside a wrapped key of at least 80 bytes (bytes past 80 are ignored, as whatsmeow does).
    package static func unwrap(_ wrapped: [UInt8], code: LinkCode) throws(PairingError) -> [UInt8] {
        guard wrapped.count >= wrappedKeyLength else { throw PairingError(.malformedContent, "wrapped key shorter than 80 bytes") }
        let salt = Array(wrapped[0..<32])
        let iv = Array(wrapped[32..<48])
        return try ctr(Array(wrapped[48..<80]), key: codeKey(code: code, salt: salt), iv: iv)
    }

    private static func ctr(_ input: [UInt8], key: SymmetricKey, iv: [UInt8]) throws(PairingError) -> [UInt8] {
        do {
            return Array(try AES._CTR.encrypt(input, using: key, nonce: AES._CTR.Nonce(nonceBytes: iv)))
        } catch {
            throw PairingError(.keyDerivationFailed, "AES-CTR")
        }
    }

    /// X25519, with failures (such as a low-order point) as `keyAgreementFailed`.
    package static func sharedSecret(_ keyPair: Curve25519KeyPair, _ publicKey: [UInt8], _ what: String) throws(PairingError) -> [UInt8] {
        guard publicKey.count == 32 else { throw PairingError(.invalidKeyLength, what) }
        do {
            return try keyPair.sharedSecret(with: publicKey)
        } catch {
            throw PairingError(.keyAgreementFailed, what)
        }
    }

    /// `HKDF-SHA256(ephemeralShared, bundleSalt, "link_code_pairing_key_bundle_encryption_key", 32)`.
    package static func bundleKey(ephemeralShared: [UInt8], salt: [UInt8]) -> SymmetricKey {
        HKDF<SHA256>.deriveKey(inputKeyMaterial: SymmetricKey(data: ephemeralShared), salt: salt, info: bundleInfo, outputByteCount: 32)
    }

    /// `bundleSalt || bundleNonce || AES-256-GCM(bundleKey, bundleNonce, plaintext) || tag`, 156 bytes for a 96-byte plaintext.
    package static func sealBundle(_ plaintext: [UInt8], ephemeralShared: [UInt8], salt: [UInt8], nonce: [UInt8]) throws(PairingError) -> [UInt8] {
        do {
            let key = bundleKey(ephemeralShared: ephemeralShared, salt: salt)
            let box = try AES.GCM.seal(plaintext, using: key, nonce: AES.GCM.Nonce(data: nonce))
            return salt + nonce + Array(box.ciphertext) + Array(box.tag)
        } catch {
            throw PairingError(.keyDerivationFailed, "AES-GCM seal")
        }
    }

    /// The 96-byte plaintext of a 156-byte key bundle.
    package static func openBundle(_ bundle: [UInt8], ephemeralShared: [UInt8]) throws(PairingError) -> [UInt8] {
        guard bundle.count == wrappedKeyBundleLength else { throw PairingError(.malformedContent, "key bundle is not 156 bytes") }
        let key = bundleKey(ephemeralShared: ephemeralShared, salt: Array(bundle[0..<32]))
        do {
            let box = try AES.GCM.SealedBox(
                nonce: AES.GCM.Nonce(data: bundle[32..<44]), ciphertext: bundle[44..<140], tag: bundle[140..<156])
            return Array(try AES.GCM.open(box, using: key))
        } catch {
            throw PairingError(.keyBundleDecryptionFailed)
        }
    }

    /// `HKDF-SHA256(ephemeralShared || identityShared || advRandom, no salt, "adv_secret", 32)`: the new ADV secret.
    package static func advSecret(ephemeralShared: [UInt8], identityShared: [UInt8], advRandom: [UInt8]) -> [UInt8] {
        let key = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: ephemeralShared + identityShared + advRandom), info: advSecretInfo, outputByteCount: 32)
        return key.withUnsafeBytes { Array($0) }
    }

    /// `<phone>@s.whatsapp.net` for a phone number in international format (`PhoneNumber`'s rule; separators allowed).
    package static func phoneJID(for phoneNumber: String) throws(PairingError) -> JID {
        do {
            return .phoneNumber(try PhoneNumber(phoneNumber).digits)
        } catch {
            throw PairingError(.invalidPhoneNumber, error.description)
        }
    }
}
