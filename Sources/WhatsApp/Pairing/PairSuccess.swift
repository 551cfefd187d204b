// pair-success: the companion verifies the primary's signed device identity, signs it and replies (docs/protocol-notes.md#pair-success).
// The primary phone's side of the same exchange is in the WhatsAppServerSide module.

import Crypto
import Foundation
import SwiftProtobuf
import WABinary
import WAProto

/// The 2-byte prefixes of ADV HMACs and signatures (docs/protocol-notes.md#pair-success-verification).
package enum ADVPrefix {
    /// Account signature by the primary: `06 00`.
    package static let accountSignature: [UInt8] = [0x06, 0x00]
    /// Device signature by the companion: `06 01`.
    package static let deviceSignature: [UInt8] = [0x06, 0x01]
    /// Hosted account signature, and the HMAC prefix of a hosted container: `06 05`.
    package static let hostedAccountSignature: [UInt8] = [0x06, 0x05]

    /// The HMAC prefix: `06 05` when the container's accountType is HOSTED, else nothing.
    package static func hmac(containerAccountType: Wa_ADVEncryptionType) -> [UInt8] {
        containerAccountType == .hosted ? hostedAccountSignature : []
    }

    /// The account-signature prefix: `06 05` when the inner deviceType is HOSTED, else `06 00`.
    package static func account(deviceType: Wa_ADVEncryptionType) -> [UInt8] {
        deviceType == .hosted ? hostedAccountSignature : accountSignature
    }
}

/// The server's `pair-success` IQ (docs/protocol-notes.md#pair-success).
public struct PairSuccess: Hashable, Sendable {
    /// The IQ id, echoed by the reply.
    public var iqID: String
    /// The serialised ADVSignedDeviceIdentityHMAC from `<device-identity>`.
    public var deviceIdentity: [UInt8]
    /// This companion's phone-number AD-JID from `<device jid>`.
    public var jid: JID
    /// This companion's LID AD-JID from `<device lid>`, when given.
    public var lid: JID?
    /// The primary's platform from `<platform name>` (`android`, `smba`, `IOS`, …), when given; any value is kept.
    public var platform: String?
    /// The business name from `<biz name>`, when given.
    public var businessName: String?
    /// The server time `t` in Unix seconds, when given and numeric.
    public var serverTime: Int64?

    /// A pair-success from its parts.
    public init(
        iqID: String, deviceIdentity: [UInt8], jid: JID, lid: JID?, platform: String?, businessName: String?, serverTime: Int64?
    ) {
        self.iqID = iqID
        self.deviceIdentity = deviceIdentity
        self.jid = jid
        self.lid = lid
        self.platform = platform
        self.businessName = businessName
        self.serverTime = serverTime
    }

    /// Reads `<iq type="set"><pair-success><device-identity/><platform/><device/>[<biz/>]</pair-success></iq>`, children by name.
    public init(parsing node: Node) throws(PairingError) {
        try PairingNodes.expectIQ(node, types: ["set"], context: "pair-success")
        if let from = try PairingNodes.optionalJID("from", of: node), from != .whatsappServer {
            throw PairingError(.unexpectedNode, "pair-success not from the server")
        }
        guard let success = node.child("pair-success") else { throw PairingError(.missingChild, "pair-success") }
        guard let device = success.child("device") else { throw PairingError(.missingChild, "device") }
        self.init(
            iqID: try PairingNodes.string("id", of: node),
            deviceIdentity: try PairingNodes.bytes(of: "device-identity", in: success, minimumLength: 1),
            jid: try PairingNodes.jid("jid", of: device),
            lid: try PairingNodes.optionalJID("lid", of: device),
            platform: success.child("platform")?.attributes["name"]?.description,
            businessName: success.child("biz")?.attributes["name"]?.description,
            serverTime: node.attributes["t"]?.string.flatMap { Int64($0, radix: 10) }
        )
    }

    /// Verifies the HMAC and the account signature, signs the device identity, and builds the reply
    /// (docs/protocol-notes.md#pair-success-verification).
    ///
    /// Persist `completion.credentials` before sending `completion.reply`; expect a 515 stream error afterwards.
    /// On failure send `PairSuccess.errorReply(iqID:for:)` and disconnect.
    public func complete(credentials: DeviceCredentials) throws(PairingError) -> PairingCompletion {
        let container: Wa_ADVSignedDeviceIdentityHMAC = try ADVCoding.decode(deviceIdentity, "ADVSignedDeviceIdentityHMAC")
        guard container.hasDetails, container.hasHmac else { throw PairingError(.malformedProtobuf, "ADVSignedDeviceIdentityHMAC fields") }
        let details = Array(container.details)
        let hmacMessage = ADVPrefix.hmac(containerAccountType: container.accountType) + details
        guard
            HMAC<SHA256>.isValidAuthenticationCode(
                Array(container.hmac), authenticating: hmacMessage, using: SymmetricKey(data: credentials.advSecretKey))
        else { throw PairingError(.hmacMismatch) }

        var account: Wa_ADVSignedDeviceIdentity = try ADVCoding.decode(details, "ADVSignedDeviceIdentity")
        let deviceDetails: Wa_ADVDeviceIdentity = try ADVCoding.decode(Array(account.details), "ADVDeviceIdentity")
        let identity = credentials.identityKey
        let accountSignatureKey = Array(account.accountSignatureKey)
        guard accountSignatureKey.count == 32 else { throw PairingError(.invalidAccountSignature, "account signature key is not 32 bytes") }
        guard account.accountSignature.count == 64 else { throw PairingError(.invalidAccountSignature, "account signature is not 64 bytes") }
        let accountMessage = ADVPrefix.account(deviceType: deviceDetails.deviceType) + Array(account.details) + identity.publicKey
        guard XEdDSA.verify(publicKey: accountSignatureKey, message: accountMessage, signature: Array(account.accountSignature)) else {
            throw PairingError(.invalidAccountSignature)
        }

        let deviceMessage = ADVPrefix.deviceSignature + Array(account.details) + identity.publicKey + accountSignatureKey
        do {
            account.deviceSignature = Data(try XEdDSA.sign(privateKey: identity.privateKey, message: deviceMessage))
        } catch {
            throw PairingError(.signingFailed, "device signature")
        }
        let persisted = try ADVCoding.encode(account, "ADVSignedDeviceIdentity")
        var sent = account
        sent.clearAccountSignatureKey()
        let reply = Node(
            tag: "iq", attributes: ["to": .jid(.whatsappServer), "type": "result", "id": .string(iqID)],
            children: [
                Node(
                    tag: "pair-device-sign",
                    children: [
                        Node(
                            tag: "device-identity", attributes: ["key-index": .string(String(deviceDetails.keyIndex))],
                            bytes: try ADVCoding.encode(sent, "ADVSignedDeviceIdentity"))
                    ])
            ])

        var updated = credentials
        updated.pairedAccount = PairedAccount(jid: jid, lid: lid, account: persisted, platform: platform, businessName: businessName)
        return PairingCompletion(credentials: updated, reply: reply, keyIndex: deviceDetails.keyIndex, primaryIdentityKey: accountSignatureKey)
    }

    /// The error reply whatsmeow sends when pair-success fails: 401 `hmac-mismatch` / `signature-mismatch`, else 500.
    public static func errorReply(iqID: String, for error: PairingError) -> Node {
        let (code, text): (String, String) =
            switch error.reason {
            case .hmacMismatch: ("401", "hmac-mismatch")
            case .invalidAccountSignature: ("401", "signature-mismatch")
            default: ("500", "internal-error")
            }
        return Node(
            tag: "iq", attributes: ["to": .jid(.whatsappServer), "type": "error", "id": .string(iqID)],
            children: [Node(tag: "error", attributes: ["code": .string(code), "text": .string(text)])])
    }
}

/// The outcome of an accepted pair-success: what to persist, then what to send.
public struct PairingCompletion: Sendable {
    /// The credentials with `pairedAccount` set; the stored account keeps accountSignatureKey.
    public let credentials: DeviceCredentials
    /// The `pair-device-sign` reply; its device identity omits accountSignatureKey (field 2).
    public let reply: Node
    /// The key index of the new device identity.
    public let keyIndex: UInt32
    /// The primary's identity public key; store it as the Signal identity of the primary device (LID user, device 0).
    public let primaryIdentityKey: [UInt8]
}

/// Protobuf decoding and encoding with `PairingError`s.
package enum ADVCoding {
    package static func decode<Message: SwiftProtobuf.Message>(_ bytes: [UInt8], _ name: String) throws(PairingError) -> Message {
        do {
            return try Message(serializedBytes: bytes)
        } catch {
            throw PairingError(.malformedProtobuf, name)
        }
    }

    package static func encode(_ message: some SwiftProtobuf.Message, _ name: String) throws(PairingError) -> [UInt8] {
        do {
            return try message.serializedBytes()
        } catch {
            throw PairingError(.malformedProtobuf, name)
        }
    }
}
