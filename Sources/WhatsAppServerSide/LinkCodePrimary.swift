// The primary phone's side of phone-code pairing, for the simulator's scripted phone (docs/protocol-notes.md#link-code-primary-hello, mirrored).

import WhatsApp

/// The primary phone's side of phone-code pairing, for the simulator's scripted phone.
///
/// The phone decrypts the companion's ephemeral key with the code the user typed, answers with its own wrapped
/// ephemeral key and identity key, and later opens the companion's key bundle to learn the companion identity and
/// the ADV secret. A mistyped code surfaces as `keyBundleDecryptionFailed` in `receiveCompanionFinish(_:)`.
public struct LinkCodePrimary: Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// The ref the server issued for this pairing.
    public let ref: [UInt8]
    /// The stage-2 notification to deliver to the companion.
    public let primaryHello: PrimaryHello
    private let identityKey: Curve25519KeyPair
    private let ephemeralShared: [UInt8]

    /// Processes `hello` with the code the user typed (`XXXX-XXXX` or bare) and the phone's identity key.
    public init(typedCode: String, hello: CompanionHello, ref: [UInt8], identityKey: Curve25519KeyPair, notificationID: String? = nil)
        throws(PairingError)
    {
        try self.init(
            typedCode: typedCode, hello: hello, ref: ref, identityKey: identityKey, notificationID: notificationID,
            ephemeralKey: .generate(), salt: PairingRandom.bytes(32), iv: PairingRandom.bytes(16))
    }

    package init(
        typedCode: String, hello: CompanionHello, ref: [UInt8], identityKey: Curve25519KeyPair, notificationID: String?,
        ephemeralKey: Curve25519KeyPair, salt: [UInt8], iv: [UInt8]
    ) throws(PairingError) {
        let code = try LinkCode(typedCode)
        let companionEphemeralPublicKey = try LinkCodeCrypto.unwrap(hello.wrappedCompanionEphemeralPublicKey, code: code)
        self.ref = ref
        self.identityKey = identityKey
        self.ephemeralShared = try LinkCodeCrypto.sharedSecret(ephemeralKey, companionEphemeralPublicKey, "companion ephemeral key")
        self.primaryHello = PrimaryHello(
            notificationID: notificationID, ref: ref,
            wrappedPrimaryEphemeralPublicKey: try LinkCodeCrypto.wrap(publicKey: ephemeralKey.publicKey, code: code, salt: salt, iv: iv),
            primaryIdentityPublicKey: identityKey.publicKey)
    }

    /// Opens the companion's key bundle and derives the ADV secret the companion derived.
    public func receiveCompanionFinish(_ finish: CompanionFinish) throws(PairingError) -> LinkCodePrimaryResult {
        guard finish.ref == ref else { throw PairingError(.refMismatch) }
        let plaintext = try LinkCodeCrypto.openBundle(finish.wrappedKeyBundle, ephemeralShared: ephemeralShared)
        guard plaintext.count == 96 else { throw PairingError(.keyBundleMismatch, "plaintext is not 96 bytes") }
        let companionIdentity = Array(plaintext[0..<32])
        guard companionIdentity == finish.identityPublicKey else { throw PairingError(.keyBundleMismatch, "companion identity") }
        guard Array(plaintext[32..<64]) == identityKey.publicKey else { throw PairingError(.keyBundleMismatch, "primary identity") }
        let identityShared = try LinkCodeCrypto.sharedSecret(identityKey, companionIdentity, "companion identity key")
        return LinkCodePrimaryResult(
            companionIdentityPublicKey: companionIdentity,
            advSecretKey: LinkCodeCrypto.advSecret(
                ephemeralShared: ephemeralShared, identityShared: identityShared, advRandom: Array(plaintext[64..<96])))
    }

    /// A summary without keys.
    public var description: String { "LinkCodePrimary(keys redacted)" }

    /// The same as `description`.
    public var debugDescription: String { description }
}

/// What the primary learns from companion_finish: enough to issue pair-success.
public struct LinkCodePrimaryResult: Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// The companion's identity public key.
    public let companionIdentityPublicKey: [UInt8]
    /// The ADV secret, equal to the companion's derived one.
    public let advSecretKey: [UInt8]

    /// A summary without the secret.
    public var description: String { "LinkCodePrimaryResult(secret redacted)" }

    /// The same as `description`.
    public var debugDescription: String { description }
}
