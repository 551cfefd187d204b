// Pairing with a phone-number code ("link code"), both the companion's and the primary phone's side (wa-protocol.md §7).
//
// Companion:  LinkCodePairing → companion_hello → (hello response: ref) → PrimaryHello → LinkCodeCompletion
//             (persist the new ADV secret) → companion_finish → pair-success (§8).
// Primary:    CompanionHello + the code the user typed → LinkCodePrimary → PrimaryHello notification;
//             CompanionFinish → LinkCodePrimaryResult (companion identity key and the same ADV secret).

import Crypto
import CryptoExtras
import Foundation
import WABinary

// MARK: - The code

/// An 8-character pairing code over `123456789ABCDEFGHJKLMNPQRSTVWXYZ` (no 0, I, O, U), from 5 bytes (§7.2).
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

/// The link-code key derivations and ciphers (§7.2, §7.4).
enum LinkCodeCrypto {
    /// PBKDF2 rounds: 2 << 16.
    static let pbkdf2Rounds = 131_072
    /// salt(32) || iv(16) || AES-CTR(public key)(32).
    static let wrappedKeyLength = 80
    /// bundleSalt(32) || bundleNonce(12) || AES-GCM(96-byte plaintext) with its 16-byte tag.
    static let wrappedKeyBundleLength = 156
    static let bundleInfo = Array("link_code_pairing_key_bundle_encryption_key".utf8)
    static let advSecretInfo = Array("adv_secret".utf8)

    /// `PBKDF2-HMAC-SHA256(code, salt, 131072, 32)`.
    static func codeKey(code: LinkCode, salt: [UInt8]) throws(PairingError) -> SymmetricKey {
        do {
            return try KDF.Insecure.PBKDF2.deriveKey(
                from: Array(code.rawValue.utf8), salt: salt, using: .sha256, outputByteCount: 32, unsafeUncheckedRounds: pbkdf2Rounds)
        } catch {
            throw PairingError(.keyDerivationFailed, "PBKDF2")
        }
    }

    /// `salt || iv || AES-256-CTR(codeKey, iv, publicKey)`; the IV is the full initial 128-bit counter block.
    static func wrap(publicKey: [UInt8], code: LinkCode, salt: [UInt8], iv: [UInt8]) throws(PairingError) -> [UInt8] {
        guard publicKey.count == 32, salt.count == 32, iv.count == 16 else { throw PairingError(.invalidKeyLength, "link-code wrap input") }
        return salt + iv + (try ctr(publicKey, key: codeKey(code: code, salt: salt), iv: iv))
    }

    /// The 32-byte public key inside a wrapped key of at least 80 bytes (bytes past 80 are ignored, as whatsmeow does).
    static func unwrap(_ wrapped: [UInt8], code: LinkCode) throws(PairingError) -> [UInt8] {
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
    static func sharedSecret(_ keyPair: Curve25519KeyPair, _ publicKey: [UInt8], _ what: String) throws(PairingError) -> [UInt8] {
        guard publicKey.count == 32 else { throw PairingError(.invalidKeyLength, what) }
        do {
            return try keyPair.sharedSecret(with: publicKey)
        } catch {
            throw PairingError(.keyAgreementFailed, what)
        }
    }

    /// `HKDF-SHA256(ephemeralShared, bundleSalt, "link_code_pairing_key_bundle_encryption_key", 32)`.
    static func bundleKey(ephemeralShared: [UInt8], salt: [UInt8]) -> SymmetricKey {
        HKDF<SHA256>.deriveKey(inputKeyMaterial: SymmetricKey(data: ephemeralShared), salt: salt, info: bundleInfo, outputByteCount: 32)
    }

    /// `bundleSalt || bundleNonce || AES-256-GCM(bundleKey, bundleNonce, plaintext) || tag`, 156 bytes for a 96-byte plaintext.
    static func sealBundle(_ plaintext: [UInt8], ephemeralShared: [UInt8], salt: [UInt8], nonce: [UInt8]) throws(PairingError) -> [UInt8] {
        do {
            let key = bundleKey(ephemeralShared: ephemeralShared, salt: salt)
            let box = try AES.GCM.seal(plaintext, using: key, nonce: AES.GCM.Nonce(data: nonce))
            return salt + nonce + Array(box.ciphertext) + Array(box.tag)
        } catch {
            throw PairingError(.keyDerivationFailed, "AES-GCM seal")
        }
    }

    /// The 96-byte plaintext of a 156-byte key bundle.
    static func openBundle(_ bundle: [UInt8], ephemeralShared: [UInt8]) throws(PairingError) -> [UInt8] {
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
    static func advSecret(ephemeralShared: [UInt8], identityShared: [UInt8], advRandom: [UInt8]) -> [UInt8] {
        let key = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: ephemeralShared + identityShared + advRandom), info: advSecretInfo, outputByteCount: 32)
        return key.withUnsafeBytes { Array($0) }
    }

    /// `<phone>@s.whatsapp.net` for a phone number in international format: digits, no leading 0, more than 6 digits.
    ///
    /// `+`, spaces, dashes, dots and parentheses are dropped first; anything else is rejected.
    static func phoneJID(for phoneNumber: String) throws(PairingError) -> JID {
        let separators = Set("+ -.()".utf8)
        var digits: [UInt8] = []
        for byte in phoneNumber.utf8 where !separators.contains(byte) {
            guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { throw PairingError(.invalidPhoneNumber, "not digits") }
            digits.append(byte)
        }
        guard digits.count > 6 else { throw PairingError(.invalidPhoneNumber, "6 digits or fewer") }
        guard digits.first != UInt8(ascii: "0") else { throw PairingError(.invalidPhoneNumber, "leading 0, not international") }
        return .phoneNumber(String(decoding: digits, as: UTF8.self))
    }
}

// MARK: - Stanzas

private let linkCodeTag = "link_code_companion_reg"

/// The companion's stage-1 IQ `companion_hello` (§7.3), as built by the companion and read by the simulator.
public struct CompanionHello: Hashable, Sendable {
    /// The IQ id.
    public var iqID: String
    /// The phone number's JID, `<digits>@s.whatsapp.net`.
    public var phoneJID: JID
    /// salt(32) || iv(16) || AES-CTR(code key, companion ephemeral public key)(32).
    public var wrappedCompanionEphemeralPublicKey: [UInt8]
    /// The companion's 32-byte Noise static public key (`companion_server_auth_key_pub`).
    public var noisePublicKey: [UInt8]
    /// The companion's web-client type.
    public var platformID: CompanionPlatformID
    /// `Browser (OS)`, e.g. `Chrome (Mac OS)`; the server rejects unrecognised browsers with 400.
    public var platformDisplay: String
    /// Whether the phone shows a push notification asking for the code.
    public var showPushNotification: Bool

    /// A companion_hello from its parts.
    public init(
        iqID: String, phoneJID: JID, wrappedCompanionEphemeralPublicKey: [UInt8], noisePublicKey: [UInt8],
        platformID: CompanionPlatformID, platformDisplay: String, showPushNotification: Bool
    ) {
        self.iqID = iqID
        self.phoneJID = phoneJID
        self.wrappedCompanionEphemeralPublicKey = wrappedCompanionEphemeralPublicKey
        self.noisePublicKey = noisePublicKey
        self.platformID = platformID
        self.platformDisplay = platformDisplay
        self.showPushNotification = showPushNotification
    }

    /// The IQ: `<iq to="s.whatsapp.net" type="set" xmlns="md" id=…><link_code_companion_reg stage="companion_hello" …>`.
    public var node: Node {
        let registration = Node(
            tag: linkCodeTag,
            attributes: [
                "jid": .jid(phoneJID), "stage": "companion_hello",
                "should_show_push_notification": .string(showPushNotification ? "true" : "false"),
            ],
            children: [
                Node(tag: "link_code_pairing_wrapped_companion_ephemeral_pub", bytes: wrappedCompanionEphemeralPublicKey),
                Node(tag: "companion_server_auth_key_pub", bytes: noisePublicKey),
                Node(tag: "companion_platform_id", content: .string(platformID.rawValue)),
                Node(tag: "companion_platform_display", content: .string(platformDisplay)),
                Node(tag: "link_code_pairing_nonce", bytes: [0x00]),
            ]
        )
        return Node(
            tag: "iq", attributes: ["to": .jid(.whatsappServer), "type": "set", "xmlns": "md", "id": .string(iqID)],
            children: [registration])
    }

    /// Reads a companion_hello IQ, children by name.
    public init(parsing node: Node) throws(PairingError) {
        try PairingNodes.expectIQ(node, types: ["set"], context: "companion_hello")
        guard let registration = node.child(linkCodeTag) else { throw PairingError(.missingChild, linkCodeTag) }
        if let stage = registration.attributes["stage"]?.description, stage != "companion_hello" {
            throw PairingError(.unexpectedNode, "stage is not companion_hello")
        }
        self.init(
            iqID: try PairingNodes.string("id", of: node),
            phoneJID: try PairingNodes.jid("jid", of: registration),
            wrappedCompanionEphemeralPublicKey: try PairingNodes.bytes(
                of: "link_code_pairing_wrapped_companion_ephemeral_pub", in: registration, minimumLength: LinkCodeCrypto.wrappedKeyLength),
            noisePublicKey: try PairingNodes.bytes(of: "companion_server_auth_key_pub", in: registration, length: 32),
            platformID: CompanionPlatformID(rawValue: try PairingNodes.text(of: "companion_platform_id", in: registration)),
            platformDisplay: try PairingNodes.text(of: "companion_platform_display", in: registration),
            showPushNotification: registration.attributes["should_show_push_notification"]?.description == "true"
        )
    }

    /// The server's answer carrying the pairing ref: `<iq type="result"><link_code_companion_reg><link_code_pairing_ref>`.
    public func responseNode(ref: [UInt8]) -> Node {
        Node(
            tag: "iq", attributes: ["from": .jid(.whatsappServer), "type": "result", "id": .string(iqID)],
            children: [
                Node(tag: linkCodeTag, attributes: ["stage": "companion_hello"], children: [Node(tag: "link_code_pairing_ref", bytes: ref)])
            ])
    }
}

/// The server's stage-2 notification carrying the primary's wrapped ephemeral key (§7.4).
public struct PrimaryHello: Hashable, Sendable {
    /// The notification id, for the ack; nil when absent.
    public var notificationID: String?
    /// The `stage` attribute (`primary_hello` per zapo), when present; not checked.
    public var stage: String?
    /// The ref from the companion_hello response.
    public var ref: [UInt8]
    /// salt(32) || iv(16) || AES-CTR(code key, primary ephemeral public key)(32); at least 80 bytes.
    public var wrappedPrimaryEphemeralPublicKey: [UInt8]
    /// The primary's 32-byte identity public key.
    public var primaryIdentityPublicKey: [UInt8]

    /// A primary hello from its parts.
    public init(notificationID: String?, stage: String? = "primary_hello", ref: [UInt8], wrappedPrimaryEphemeralPublicKey: [UInt8], primaryIdentityPublicKey: [UInt8]) {
        self.notificationID = notificationID
        self.stage = stage
        self.ref = ref
        self.wrappedPrimaryEphemeralPublicKey = wrappedPrimaryEphemeralPublicKey
        self.primaryIdentityPublicKey = primaryIdentityPublicKey
    }

    /// Reads `<notification type="link_code_companion_reg"><link_code_companion_reg …>`; children by name, `t` and `stage` optional.
    public init(parsing node: Node) throws(PairingError) {
        guard node.tag == "notification" else { throw PairingError(.unexpectedNode, "expected <notification>") }
        if let type = node.attributes["type"]?.description, type != linkCodeTag {
            throw PairingError(.unexpectedNode, "notification type is not \(linkCodeTag)")
        }
        guard let registration = node.child(linkCodeTag) else { throw PairingError(.missingChild, linkCodeTag) }
        self.init(
            notificationID: node.attributes["id"]?.description,
            stage: registration.attributes["stage"]?.description,
            ref: try PairingNodes.bytes(of: "link_code_pairing_ref", in: registration, minimumLength: 1),
            wrappedPrimaryEphemeralPublicKey: try PairingNodes.bytes(
                of: "link_code_pairing_wrapped_primary_ephemeral_pub", in: registration, minimumLength: LinkCodeCrypto.wrappedKeyLength),
            primaryIdentityPublicKey: try PairingNodes.bytes(of: "primary_identity_pub", in: registration, length: 32)
        )
    }

    /// The notification as the server sends it, for the simulator.
    public var node: Node {
        var attributes: Attributes = ["from": .jid(.whatsappServer), "type": .string(linkCodeTag)]
        if let notificationID { attributes["id"] = .string(notificationID) }
        var registrationAttributes = Attributes()
        if let stage { registrationAttributes["stage"] = .string(stage) }
        return Node(
            tag: "notification", attributes: attributes,
            children: [
                Node(
                    tag: linkCodeTag, attributes: registrationAttributes,
                    children: [
                        Node(tag: "link_code_pairing_ref", bytes: ref),
                        Node(tag: "link_code_pairing_wrapped_primary_ephemeral_pub", bytes: wrappedPrimaryEphemeralPublicKey),
                        Node(tag: "primary_identity_pub", bytes: primaryIdentityPublicKey),
                    ])
            ])
    }
}

/// The companion's stage-3 IQ `companion_finish` with the encrypted key bundle (§7.5).
public struct CompanionFinish: Hashable, Sendable {
    /// The IQ id.
    public var iqID: String
    /// The phone number's JID.
    public var phoneJID: JID
    /// bundleSalt(32) || bundleNonce(12) || AES-GCM ciphertext and tag(112): 156 bytes.
    public var wrappedKeyBundle: [UInt8]
    /// The companion's 32-byte identity public key.
    public var identityPublicKey: [UInt8]
    /// The pairing ref, echoed.
    public var ref: [UInt8]

    /// A companion_finish from its parts.
    public init(iqID: String, phoneJID: JID, wrappedKeyBundle: [UInt8], identityPublicKey: [UInt8], ref: [UInt8]) {
        self.iqID = iqID
        self.phoneJID = phoneJID
        self.wrappedKeyBundle = wrappedKeyBundle
        self.identityPublicKey = identityPublicKey
        self.ref = ref
    }

    /// The IQ: `<iq to="s.whatsapp.net" type="set" xmlns="md" id=…><link_code_companion_reg stage="companion_finish" …>`.
    public var node: Node {
        Node(
            tag: "iq", attributes: ["to": .jid(.whatsappServer), "type": "set", "xmlns": "md", "id": .string(iqID)],
            children: [
                Node(
                    tag: linkCodeTag, attributes: ["jid": .jid(phoneJID), "stage": "companion_finish"],
                    children: [
                        Node(tag: "link_code_pairing_wrapped_key_bundle", bytes: wrappedKeyBundle),
                        Node(tag: "companion_identity_public", bytes: identityPublicKey),
                        Node(tag: "link_code_pairing_ref", bytes: ref),
                    ])
            ])
    }

    /// Reads a companion_finish IQ, children by name.
    public init(parsing node: Node) throws(PairingError) {
        try PairingNodes.expectIQ(node, types: ["set"], context: "companion_finish")
        guard let registration = node.child(linkCodeTag) else { throw PairingError(.missingChild, linkCodeTag) }
        if let stage = registration.attributes["stage"]?.description, stage != "companion_finish" {
            throw PairingError(.unexpectedNode, "stage is not companion_finish")
        }
        self.init(
            iqID: try PairingNodes.string("id", of: node),
            phoneJID: try PairingNodes.jid("jid", of: registration),
            wrappedKeyBundle: try PairingNodes.bytes(
                of: "link_code_pairing_wrapped_key_bundle", in: registration, length: LinkCodeCrypto.wrappedKeyBundleLength),
            identityPublicKey: try PairingNodes.bytes(of: "companion_identity_public", in: registration, length: 32),
            ref: try PairingNodes.bytes(of: "link_code_pairing_ref", in: registration, minimumLength: 1)
        )
    }
}

// MARK: - Companion side

/// The companion's phone-code pairing in progress: the code, its ephemeral key and the ref (§7.2–§7.5).
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

    /// Handles the primary's notification: derives the shared secrets, the key bundle and the new ADV secret (§7.4).
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

/// The companion's result of stage 2: the new ADV secret to persist, then the companion_finish to send (§7.4–§7.5).
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

// MARK: - Primary side (simulator)

/// The primary phone's side of phone-code pairing, for the simulator's scripted phone (§7.4 mirrored).
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

    init(
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

/// What the primary learns from companion_finish: enough to issue pair-success (§8).
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
