// The companion's side of phone-code pairing (docs/protocol-notes.md#link-code and the three stages after it).

import WABinary

/// The companion's phone-code pairing in progress: the code, its ephemeral key and the ref.
///
/// Start it right after the `pair-device` refs were acknowledged; the QR window (160 s) still applies.
/// `description` hides the code and keys.
public struct LinkCodePairing: Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// The JID of the phone number being linked, `<digits>@s.whatsapp.net`.
    public let phoneJID: JID
    /// The code the user must type on the phone; show `code.formatted`.
    public let code: LinkCode
    /// The ref from the server's answer to companion_hello; nil until `receiveHelloResponse(_:)`.
    public private(set) var ref: [UInt8]?
    private let ephemeralKey: Curve25519KeyPair
    private let wrappedEphemeralPublicKey: [UInt8]

    /// Starts pairing `phoneNumber` (international digits; `+`, spaces and dashes allowed) with `code`, random by default.
    ///
    /// Runs PBKDF2 with 131072 rounds once.
    public init(phoneNumber: String, code: LinkCode = .random()) throws(PairingError) {
        try self.init(
            phoneNumber: phoneNumber, code: code, ephemeralKey: .generate(), salt: PairingRandom.bytes(32), iv: PairingRandom.bytes(16))
    }

    init(phoneNumber: String, code: LinkCode, ephemeralKey: Curve25519KeyPair, salt: [UInt8], iv: [UInt8]) throws(PairingError) {
        self.phoneJID = try LinkCodeCrypto.phoneJID(for: phoneNumber)
        self.code = code
        self.ephemeralKey = ephemeralKey
        self.wrappedEphemeralPublicKey = try LinkCodeCrypto.wrap(publicKey: ephemeralKey.publicKey, code: code, salt: salt, iv: iv)
    }

    /// The stage-1 request for the companion holding `credentials`.
    public func companionHello(
        iqID: String, credentials: DeviceCredentials, platformID: CompanionPlatformID, platformDisplay: String, showPushNotification: Bool = true
    ) -> CompanionHello {
        CompanionHello(
            iqID: iqID, phoneJID: phoneJID, wrappedCompanionEphemeralPublicKey: wrappedEphemeralPublicKey,
            noisePublicKey: credentials.noiseKey.publicKey, platformID: platformID, platformDisplay: platformDisplay,
            showPushNotification: showPushNotification)
    }

    /// Records the ref from the server's answer to companion_hello; an error answer throws.
    public mutating func receiveHelloResponse(_ node: Node) throws(PairingError) {
        try PairingNodes.expectIQ(node, types: ["result"], context: "companion_hello response")
        guard let registration = node.child(linkCodeTag) else { throw PairingError(.missingChild, linkCodeTag) }
        ref = try PairingNodes.bytes(of: "link_code_pairing_ref", in: registration, minimumLength: 1)
    }

    /// Handles the primary's notification: derives the shared secrets, the key bundle and the new ADV secret
    /// (docs/protocol-notes.md#link-code-primary-hello).
    ///
    /// When a ref was recorded, the notification must carry the same one. A wrong code or tampered key cannot be
    /// detected here (AES-CTR has no tag); the primary detects it when the key bundle fails to open.
    public func receivePrimaryHello(_ hello: PrimaryHello, identityKey: Curve25519KeyPair) throws(PairingError) -> LinkCodeCompletion {
        try receivePrimaryHello(
            hello, identityKey: identityKey, bundleSalt: PairingRandom.bytes(32), bundleNonce: PairingRandom.bytes(12),
            advRandom: PairingRandom.bytes(32))
    }

    func receivePrimaryHello(
        _ hello: PrimaryHello, identityKey: Curve25519KeyPair, bundleSalt: [UInt8], bundleNonce: [UInt8], advRandom: [UInt8]
    ) throws(PairingError) -> LinkCodeCompletion {
        if let ref, ref != hello.ref { throw PairingError(.refMismatch) }
        let primaryEphemeralPublicKey = try LinkCodeCrypto.unwrap(hello.wrappedPrimaryEphemeralPublicKey, code: code)
        let ephemeralShared = try LinkCodeCrypto.sharedSecret(ephemeralKey, primaryEphemeralPublicKey, "primary ephemeral key")
        let plaintext = identityKey.publicKey + hello.primaryIdentityPublicKey + advRandom
        let bundle = try LinkCodeCrypto.sealBundle(plaintext, ephemeralShared: ephemeralShared, salt: bundleSalt, nonce: bundleNonce)
        let identityShared = try LinkCodeCrypto.sharedSecret(identityKey, hello.primaryIdentityPublicKey, "primary identity key")
        return LinkCodeCompletion(
            phoneJID: phoneJID, ref: hello.ref, wrappedKeyBundle: bundle, identityPublicKey: identityKey.publicKey,
            advSecretKey: LinkCodeCrypto.advSecret(ephemeralShared: ephemeralShared, identityShared: identityShared, advRandom: advRandom))
    }

    /// A summary without the code or keys.
    public var description: String { "LinkCodePairing(\(phoneJID), ref \(ref == nil ? "pending" : "received"), code and keys redacted)" }

    /// The same as `description`.
    public var debugDescription: String { description }
}

/// The companion's result of stage 2: the new ADV secret to persist, then the companion_finish to send.
public struct LinkCodeCompletion: Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// The phone number's JID.
    public let phoneJID: JID
    /// The ref to echo.
    public let ref: [UInt8]
    /// The 156-byte encrypted key bundle.
    public let wrappedKeyBundle: [UInt8]
    /// The companion's identity public key.
    public let identityPublicKey: [UInt8]
    /// The derived ADV secret that replaces the stored one; pair-success is verified with it.
    public let advSecretKey: [UInt8]

    /// `credentials` with the ADV secret replaced; persist this before sending companion_finish.
    public func applied(to credentials: DeviceCredentials) -> DeviceCredentials {
        var updated = credentials
        updated.advSecretKey = advSecretKey
        return updated
    }

    /// The stage-3 request.
    public func companionFinish(iqID: String) -> CompanionFinish {
        CompanionFinish(iqID: iqID, phoneJID: phoneJID, wrappedKeyBundle: wrappedKeyBundle, identityPublicKey: identityPublicKey, ref: ref)
    }

    /// A summary without the secret.
    public var description: String { "LinkCodeCompletion(\(phoneJID), secret redacted)" }

    /// The same as `description`.
    public var debugDescription: String { description }
}
