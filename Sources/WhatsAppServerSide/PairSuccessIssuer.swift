// The primary phone's side of pair-success, for the simulator: signs a companion into the account and checks its reply
// (docs/protocol-notes.md#pair-success-verification).

import Crypto
import Foundation
import WABinary
import WAProto
import WhatsApp

extension PairSuccess {
    /// The IQ as the server sends it, for the simulator.
    public var node: Node {
        var attributes: Attributes = ["from": .jid(.whatsappServer), "type": "set", "id": .string(iqID), "xmlns": "md"]
        if let serverTime { attributes["t"] = .string(String(serverTime)) }
        var deviceAttributes: Attributes = ["jid": .jid(jid)]
        if let lid { deviceAttributes["lid"] = .jid(lid) }
        var children = [Node(tag: "device-identity", bytes: deviceIdentity)]
        if let platform { children.append(Node(tag: "platform", attributes: ["name": .string(platform)])) }
        children.append(Node(tag: "device", attributes: deviceAttributes))
        if let businessName { children.append(Node(tag: "biz", attributes: ["name": .string(businessName)])) }
        return Node(tag: "iq", attributes: attributes, children: [Node(tag: "pair-success", children: children)])
    }
}

/// The primary phone's side of pair-success, for the simulator: signs a companion into the account and checks its reply.
public struct PairSuccessIssuer: Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// The primary's identity key pair; its public key is the account signature key.
    public let accountSigningKey: Curve25519KeyPair

    /// An issuer signing with `accountSigningKey`.
    public init(accountSigningKey: Curve25519KeyPair) {
        self.accountSigningKey = accountSigningKey
    }

    /// A valid pair-success for the companion with `companionIdentityPublicKey` and `advSecretKey`.
    ///
    /// `accountType` sets the container's and the device identity's accountType (HOSTED selects the `06 05` HMAC prefix);
    /// `deviceType` sets the inner deviceType (HOSTED selects the `06 05` account-signature prefix).
    public func pairSuccess(
        iqID: String,
        companionIdentityPublicKey: [UInt8],
        advSecretKey: [UInt8],
        jid: JID,
        lid: JID?,
        keyIndex: UInt32,
        rawID: UInt32 = UInt32.random(in: 1...UInt32.max),
        timestamp: UInt64,
        accountType: Wa_ADVEncryptionType = .e2Ee,
        deviceType: Wa_ADVEncryptionType = .e2Ee,
        platform: String? = "android",
        businessName: String? = nil,
        serverTime: Int64? = nil
    ) throws(PairingError) -> PairSuccess {
        guard companionIdentityPublicKey.count == 32 else { throw PairingError(.invalidKeyLength, "companion identity key") }
        var deviceDetails = Wa_ADVDeviceIdentity()
        deviceDetails.rawID = rawID
        deviceDetails.timestamp = timestamp
        deviceDetails.keyIndex = keyIndex
        deviceDetails.accountType = accountType
        deviceDetails.deviceType = deviceType
        let details = try ADVCoding.encode(deviceDetails, "ADVDeviceIdentity")

        var account = Wa_ADVSignedDeviceIdentity()
        account.details = Data(details)
        account.accountSignatureKey = Data(accountSigningKey.publicKey)
        do {
            let message = ADVPrefix.account(deviceType: deviceType) + details + companionIdentityPublicKey
            account.accountSignature = Data(try XEdDSA.sign(privateKey: accountSigningKey.privateKey, message: message))
        } catch {
            throw PairingError(.signingFailed, "account signature")
        }

        var container = Wa_ADVSignedDeviceIdentityHMAC()
        let accountBytes = try ADVCoding.encode(account, "ADVSignedDeviceIdentity")
        container.details = Data(accountBytes)
        container.accountType = accountType
        let mac = HMAC<SHA256>.authenticationCode(
            for: ADVPrefix.hmac(containerAccountType: accountType) + accountBytes, using: SymmetricKey(data: advSecretKey))
        container.hmac = Data(mac)

        return PairSuccess(
            iqID: iqID, deviceIdentity: try ADVCoding.encode(container, "ADVSignedDeviceIdentityHMAC"), jid: jid, lid: lid,
            platform: platform, businessName: businessName, serverTime: serverTime)
    }

    /// Checks the companion's `pair-device-sign` reply to `issued`: same id, details and account signature, no
    /// accountSignatureKey, matching key-index, and a device signature that verifies under the companion's identity key.
    public func verifyReply(_ node: Node, to issued: PairSuccess, companionIdentityPublicKey: [UInt8]) throws(PairingError)
        -> SignedCompanionDevice
    {
        try PairingNodes.expectIQ(node, types: ["result"], context: "pair-device-sign")
        guard node.attributes["id"]?.description == issued.iqID else { throw PairingError(.replyMismatch, "iq id") }
        guard let sign = node.child("pair-device-sign") else { throw PairingError(.missingChild, "pair-device-sign") }
        guard let identityNode = sign.child("device-identity") else { throw PairingError(.missingChild, "device-identity") }
        guard let keyIndexText = identityNode.attributes["key-index"]?.string, let keyIndex = UInt32(keyIndexText, radix: 10) else {
            throw PairingError(.missingAttribute, "<device-identity> key-index")
        }
        let replyBytes = try PairingNodes.bytes(of: "device-identity", in: sign, minimumLength: 1)
        let reply: Wa_ADVSignedDeviceIdentity = try ADVCoding.decode(replyBytes, "ADVSignedDeviceIdentity")

        let container: Wa_ADVSignedDeviceIdentityHMAC = try ADVCoding.decode(issued.deviceIdentity, "ADVSignedDeviceIdentityHMAC")
        let account: Wa_ADVSignedDeviceIdentity = try ADVCoding.decode(Array(container.details), "ADVSignedDeviceIdentity")
        let deviceDetails: Wa_ADVDeviceIdentity = try ADVCoding.decode(Array(account.details), "ADVDeviceIdentity")

        guard !reply.hasAccountSignatureKey else { throw PairingError(.replyMismatch, "reply carries accountSignatureKey") }
        guard reply.details == account.details else { throw PairingError(.replyMismatch, "details") }
        guard reply.accountSignature == account.accountSignature else { throw PairingError(.replyMismatch, "account signature") }
        guard keyIndex == deviceDetails.keyIndex else { throw PairingError(.replyMismatch, "key-index") }
        let message = ADVPrefix.deviceSignature + Array(account.details) + companionIdentityPublicKey + accountSigningKey.publicKey
        guard XEdDSA.verify(publicKey: companionIdentityPublicKey, message: message, signature: Array(reply.deviceSignature)) else {
            throw PairingError(.invalidDeviceSignature)
        }
        return SignedCompanionDevice(keyIndex: keyIndex, deviceSignature: Array(reply.deviceSignature), signedDeviceIdentity: replyBytes)
    }

    /// A summary without keys.
    public var description: String { "PairSuccessIssuer(keys redacted)" }

    /// The same as `description`.
    public var debugDescription: String { description }
}

/// A companion device identity the primary has checked.
public struct SignedCompanionDevice: Hashable, Sendable {
    /// The key index the companion echoed.
    public let keyIndex: UInt32
    /// The companion's 64-byte device signature.
    public let deviceSignature: [UInt8]
    /// The ADVSignedDeviceIdentity bytes of the reply (without accountSignatureKey).
    public let signedDeviceIdentity: [UInt8]
}
