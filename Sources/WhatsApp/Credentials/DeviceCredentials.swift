// The credentials a companion persists, and the port through which it loads and saves them (docs/protocol-notes.md#credentials).

import Foundation
import SwiftProtobuf
import WABinary
import WAProto

/// Everything a companion must keep across restarts: its keys before pairing, and its account after.
///
/// Persist it from the start, before the first connection, so a reconnect during pairing keeps the same QR identity.
/// `description` never shows key material.
public struct DeviceCredentials: Codable, Sendable, Equatable {
    /// The Noise static key pair; identifies this companion to the server (QR, `companion_server_auth_key_pub`).
    public var noiseKey: Curve25519KeyPair
    /// The Signal identity key pair (QR, registration payload, ADV signatures).
    public var identityKey: Curve25519KeyPair
    /// The signed prekey, signed by `identityKey`.
    public var signedPreKey: SignedPreKey
    /// The Signal registration id, sent as 4 big-endian bytes.
    public var registrationID: UInt32
    /// The 32-byte ADV secret: the pair-success HMAC key. Replaced by a derived value in phone-code pairing
    /// (docs/protocol-notes.md#link-code-primary-hello).
    public var advSecretKey: [UInt8]
    /// The account this companion is linked to; nil until pair-success has been accepted.
    public var pairedAccount: PairedAccount?
    /// The id the next generated prekey gets; nil means 1 (none generated yet).
    public var nextPreKeyID: UInt32?

    /// Credentials from their parts.
    public init(
        noiseKey: Curve25519KeyPair,
        identityKey: Curve25519KeyPair,
        signedPreKey: SignedPreKey,
        registrationID: UInt32,
        advSecretKey: [UInt8],
        pairedAccount: PairedAccount? = nil,
        nextPreKeyID: UInt32? = nil
    ) {
        self.noiseKey = noiseKey
        self.identityKey = identityKey
        self.signedPreKey = signedPreKey
        self.registrationID = registrationID
        self.advSecretKey = advSecretKey
        self.pairedAccount = pairedAccount
        self.nextPreKeyID = nextPreKeyID
    }

    /// The id of the signed prekey generated with fresh credentials (both reference libraries use 1).
    public static let initialSignedPreKeyID: UInt32 = 1

    /// The registration id range: libsignal's 14-bit ids, never 0 (Baileys draws 14 bits; whatsmeow 32).
    public static let registrationIDRange: ClosedRange<UInt32> = 1...16380

    /// Fresh, unpaired credentials: new Noise, identity and signed-prekey key pairs, registration id and ADV secret.
    public static func generate() throws(PairingError) -> DeviceCredentials {
        let identityKey = Curve25519KeyPair.generate()
        var generator = SystemRandomNumberGenerator()
        return DeviceCredentials(
            noiseKey: Curve25519KeyPair.generate(),
            identityKey: identityKey,
            signedPreKey: try SignedPreKey.generate(id: initialSignedPreKeyID, identityKey: identityKey),
            registrationID: UInt32.random(in: registrationIDRange, using: &generator),
            advSecretKey: PairingRandom.bytes(32)
        )
    }

    /// True once pair-success has been accepted and the companion logs in instead of registering.
    public var isPaired: Bool { pairedAccount != nil }
}

extension DeviceCredentials: CustomStringConvertible, CustomDebugStringConvertible {
    /// A summary without key material.
    public var description: String {
        let state = pairedAccount.map { "paired as \($0.jid)" } ?? "unpaired"
        return "DeviceCredentials(\(state), registrationID: \(registrationID), keys redacted)"
    }

    /// The same summary as `description`, so debug output never shows keys either.
    public var debugDescription: String { description }
}

/// A signed prekey: an X25519 key pair whose `0x05 || publicKey` is signed by the identity key (docs/protocol-notes.md#signatures).
public struct SignedPreKey: Codable, Sendable, Equatable {
    /// The prekey id, sent as 3 big-endian bytes.
    public var id: UInt32
    /// The prekey's key pair.
    public var keyPair: Curve25519KeyPair
    /// The 64-byte signature by the identity key over `0x05 || keyPair.publicKey`.
    public var signature: [UInt8]

    /// A signed prekey from its parts.
    public init(id: UInt32, keyPair: Curve25519KeyPair, signature: [UInt8]) {
        self.id = id
        self.keyPair = keyPair
        self.signature = signature
    }

    /// A new key pair with id `id`, signed by `identityKey`.
    public static func generate(id: UInt32, identityKey: Curve25519KeyPair) throws(PairingError) -> SignedPreKey {
        let keyPair = Curve25519KeyPair.generate()
        do {
            let signature = try XEdDSA.sign(privateKey: identityKey.privateKey, message: signedMessage(for: keyPair.publicKey))
            return SignedPreKey(id: id, keyPair: keyPair, signature: signature)
        } catch {
            throw PairingError(.signingFailed, "signed prekey")
        }
    }

    /// The signed bytes: the libsignal-serialised public key `0x05 || publicKey` (33 bytes).
    public static func signedMessage(for publicKey: [UInt8]) -> [UInt8] {
        [0x05] + publicKey
    }

    /// True when `signature` verifies under `identityPublicKey`.
    public func isSigned(by identityPublicKey: [UInt8]) -> Bool {
        XEdDSA.verify(publicKey: identityPublicKey, message: Self.signedMessage(for: keyPair.publicKey), signature: signature)
    }
}

extension SignedPreKey: CustomStringConvertible, CustomDebugStringConvertible {
    /// The id only; no key material.
    public var description: String { "SignedPreKey(id: \(id), keys redacted)" }

    /// The same as `description`.
    public var debugDescription: String { description }
}

/// The account a companion was linked to at pair-success (docs/protocol-notes.md#pair-success-verification, step 4).
public struct PairedAccount: Codable, Sendable, Equatable {
    /// This companion's phone-number AD-JID, e.g. `12345678901:17@s.whatsapp.net`; its device is the assigned number.
    public var jid: JID
    /// This companion's LID AD-JID, e.g. `98765432109876:17@lid`, when the server gave one.
    public var lid: JID?
    /// The serialised ADVSignedDeviceIdentity with all four fields, including accountSignatureKey and deviceSignature.
    public var account: [UInt8]
    /// The primary's platform from pair-success (`android`, `smba`, …), when given.
    public var platform: String?
    /// The business name from pair-success, when given.
    public var businessName: String?
    /// The push name, once known.
    public var pushName: String?

    /// A paired account from its parts.
    public init(jid: JID, lid: JID?, account: [UInt8], platform: String?, businessName: String?, pushName: String? = nil) {
        self.jid = jid
        self.lid = lid
        self.account = account
        self.platform = platform
        self.businessName = businessName
        self.pushName = pushName
    }

    /// The primary device's identity public key (the account signature key), or nil if `account` does not decode.
    public var primaryIdentityKey: [UInt8]? {
        guard let identity = try? Wa_ADVSignedDeviceIdentity(serializedBytes: account), identity.hasAccountSignatureKey else {
            return nil
        }
        return Array(identity.accountSignatureKey)
    }

    /// The key index of this companion's device identity, or nil if `account` does not decode.
    public var keyIndex: UInt32? {
        guard let identity = try? Wa_ADVSignedDeviceIdentity(serializedBytes: account),
            let details = try? Wa_ADVDeviceIdentity(serializedBytes: identity.details)
        else { return nil }
        return details.keyIndex
    }

    private enum CodingKeys: String, CodingKey {
        case jid, lid, account, platform, businessName, pushName
    }

    /// Decodes JIDs from their textual form.
    public init(from decoder: any Swift.Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        jid = try Self.decodeJID(container.decode(String.self, forKey: .jid), container, .jid)
        lid = try container.decodeIfPresent(String.self, forKey: .lid).map { try Self.decodeJID($0, container, .lid) }
        account = try container.decode([UInt8].self, forKey: .account)
        platform = try container.decodeIfPresent(String.self, forKey: .platform)
        businessName = try container.decodeIfPresent(String.self, forKey: .businessName)
        pushName = try container.decodeIfPresent(String.self, forKey: .pushName)
    }

    /// Encodes JIDs in their textual form.
    public func encode(to encoder: any Swift.Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(jid.description, forKey: .jid)
        try container.encodeIfPresent(lid?.description, forKey: .lid)
        try container.encode(account, forKey: .account)
        try container.encodeIfPresent(platform, forKey: .platform)
        try container.encodeIfPresent(businessName, forKey: .businessName)
        try container.encodeIfPresent(pushName, forKey: .pushName)
    }

    private static func decodeJID(_ text: String, _ container: KeyedDecodingContainer<CodingKeys>, _ key: CodingKeys) throws -> JID {
        do {
            return try JID(parsing: text)
        } catch {
            throw DecodingError.dataCorruptedError(forKey: key, in: container, debugDescription: "not a JID")
        }
    }
}
