import Crypto
import Foundation
import SwiftProtobuf
import Testing
import WABinary
import WAProto
import WhatsAppServerSide

@testable import WhatsApp

@Suite struct PairingSuccessTests {
    typealias Support = PairingTestSupport

    static let jid = JID.phoneNumber("12345678901", device: 17)
    static let lid = JID.lid("98765432109876", device: 17)

    struct Setup {
        var credentials: DeviceCredentials
        var primaryKey: Curve25519KeyPair
        var issuer: PairSuccessIssuer { PairSuccessIssuer(accountSigningKey: primaryKey) }
    }

    func setup() throws -> Setup {
        Setup(credentials: try DeviceCredentials.generate(), primaryKey: .generate())
    }

    func issue(
        _ setup: Setup, accountType: Wa_ADVEncryptionType = .e2Ee, deviceType: Wa_ADVEncryptionType = .e2Ee, keyIndex: UInt32 = 7
    ) throws -> PairSuccess {
        try setup.issuer.pairSuccess(
            iqID: "ps-1", companionIdentityPublicKey: setup.credentials.identityKey.publicKey, advSecretKey: setup.credentials.advSecretKey,
            jid: Self.jid, lid: Self.lid, keyIndex: keyIndex, rawID: 1234, timestamp: 1_700_000_000, accountType: accountType,
            deviceType: deviceType, platform: "smba", businessName: "Acme Ltd", serverTime: 1_700_000_123)
    }

    // MARK: Round trip

    @Test(arguments: [(Wa_ADVEncryptionType.e2Ee, Wa_ADVEncryptionType.e2Ee), (.hosted, .hosted), (.hosted, .e2Ee), (.e2Ee, .hosted)])
    func primaryToCompanionToPrimary(accountType: Wa_ADVEncryptionType, deviceType: Wa_ADVEncryptionType) throws {
        let setup = try setup()
        let issued = try issue(setup, accountType: accountType, deviceType: deviceType)
        let received = try PairSuccess(parsing: Support.overTheWire(issued.node))
        #expect(received == issued)
        #expect(received.platform == "smba")
        #expect(received.businessName == "Acme Ltd")
        #expect(received.serverTime == 1_700_000_123)
        #expect(received.jid == Self.jid)
        #expect(received.lid == Self.lid)

        let completion = try received.complete(credentials: setup.credentials)
        #expect(completion.keyIndex == 7)
        #expect(completion.primaryIdentityKey == setup.primaryKey.publicKey)
        let paired = try #require(completion.credentials.pairedAccount)
        #expect(paired.jid == Self.jid)
        #expect(paired.lid == Self.lid)
        #expect(paired.platform == "smba")
        #expect(paired.businessName == "Acme Ltd")
        #expect(paired.primaryIdentityKey == setup.primaryKey.publicKey)
        #expect(paired.keyIndex == 7)
        #expect(completion.credentials.identityKey == setup.credentials.identityKey)
        #expect(completion.credentials.advSecretKey == setup.credentials.advSecretKey)

        let reply = try Support.overTheWire(completion.reply)
        let verified = try setup.issuer.verifyReply(reply, to: issued, companionIdentityPublicKey: setup.credentials.identityKey.publicKey)
        #expect(verified.keyIndex == 7)
        #expect(verified.deviceSignature.count == 64)
    }

    @Test func replyOmitsAccountSignatureKeyWhilePersistedAccountKeepsIt() throws {
        let setup = try setup()
        let completion = try issue(setup).complete(credentials: setup.credentials)
        #expect(completion.reply.tag == "iq")
        #expect(completion.reply.attributes["to"] == .jid(.whatsappServer))
        #expect(completion.reply.attributes["type"] == "result")
        #expect(completion.reply.attributes["id"] == "ps-1")
        let identityNode = try #require(completion.reply.child(path: "pair-device-sign", "device-identity"))
        #expect(identityNode.attributes["key-index"] == .string("7"))
        let sent = try Wa_ADVSignedDeviceIdentity(serializedBytes: try #require(identityNode.contentBytes))
        #expect(!sent.hasAccountSignatureKey)
        #expect(sent.hasDetails && sent.hasAccountSignature && sent.hasDeviceSignature)
        // Field 2 (tag byte 0x12) appears nowhere at top level of the sent message.
        #expect(try Self.topLevelFieldNumbers(Array(sent.serializedBytes() as [UInt8])) == [1, 3, 4])

        let persisted = try Wa_ADVSignedDeviceIdentity(serializedBytes: try #require(completion.credentials.pairedAccount).account)
        #expect(persisted.accountSignatureKey == Data(setup.primaryKey.publicKey))
        #expect(persisted.deviceSignature == sent.deviceSignature)
        #expect(persisted.details == sent.details)
        #expect(persisted.accountSignature == sent.accountSignature)

        // The device signature covers 06 01 || details || companion identity || account signature key.
        let message = [0x06, 0x01] + Array(persisted.details) + setup.credentials.identityKey.publicKey + setup.primaryKey.publicKey
        #expect(XEdDSA.verify(publicKey: setup.credentials.identityKey.publicKey, message: message, signature: Array(persisted.deviceSignature)))
    }

    @Test func keyIndexIsSentAsDecimal() throws {
        let setup = try setup()
        let completion = try issue(setup, keyIndex: 4_000_000_000).complete(credentials: setup.credentials)
        #expect(completion.reply.child(path: "pair-device-sign", "device-identity")?.attributes["key-index"] == .string("4000000000"))
    }

    // MARK: HMAC

    @Test(arguments: [0, 7, 100, 255])
    func hmacBitFlipIsRejected(bit: Int) throws {
        let setup = try setup()
        var success = try issue(setup)
        var container = try Wa_ADVSignedDeviceIdentityHMAC(serializedBytes: success.deviceIdentity)
        var mac = Array(container.hmac)
        mac[bit / 8] ^= UInt8(1 << (bit % 8))
        container.hmac = Data(mac)
        success.deviceIdentity = try container.serializedBytes()
        let error = #expect(throws: PairingError.self) { try success.complete(credentials: setup.credentials) }
        #expect(error?.reason == .hmacMismatch)
        #expect(PairSuccess.errorReply(iqID: "ps-1", for: try #require(error)).child("error")?.attributes["text"] == "hmac-mismatch")
    }

    @Test func detailsBitFlipIsRejectedByTheHMAC() throws {
        let setup = try setup()
        var success = try issue(setup)
        var container = try Wa_ADVSignedDeviceIdentityHMAC(serializedBytes: success.deviceIdentity)
        var details = Array(container.details)
        details[details.count - 1] ^= 0x01
        container.details = Data(details)
        success.deviceIdentity = try container.serializedBytes()
        #expect((#expect(throws: PairingError.self) { try success.complete(credentials: setup.credentials) })?.reason == .hmacMismatch)
    }

    @Test func wrongAdvSecretIsRejected() throws {
        let setup = try setup()
        var other = setup.credentials
        other.advSecretKey[0] ^= 0x01
        #expect((#expect(throws: PairingError.self) { try issue(setup).complete(credentials: other) })?.reason == .hmacMismatch)
    }

    @Test func hostedHMACPrefixFollowsTheContainerAccountType() throws {
        let setup = try setup()
        // A hosted container whose HMAC was computed without the 06 05 prefix fails, and vice versa.
        for (containerType, prefix) in [(Wa_ADVEncryptionType.hosted, [UInt8]()), (.e2Ee, [0x06, 0x05])] {
            var success = try issue(setup)
            var container = try Wa_ADVSignedDeviceIdentityHMAC(serializedBytes: success.deviceIdentity)
            container.accountType = containerType
            container.hmac = Data(HMAC<SHA256>.authenticationCode(for: prefix + Array(container.details), using: SymmetricKey(data: setup.credentials.advSecretKey)))
            success.deviceIdentity = try container.serializedBytes()
            #expect((#expect(throws: PairingError.self) { try success.complete(credentials: setup.credentials) })?.reason == .hmacMismatch)
        }
    }

    // MARK: Account signature

    /// Rebuilds the container around `account` with a valid HMAC, so only the signature check can fail.
    func resealed(_ success: PairSuccess, advSecret: [UInt8], _ change: (inout Wa_ADVSignedDeviceIdentity) throws -> Void) throws -> PairSuccess {
        var success = success
        var container = try Wa_ADVSignedDeviceIdentityHMAC(serializedBytes: success.deviceIdentity)
        var account = try Wa_ADVSignedDeviceIdentity(serializedBytes: container.details)
        try change(&account)
        container.details = try account.serializedBytes()
        let prefix: [UInt8] = container.accountType == .hosted ? [0x06, 0x05] : []
        container.hmac = Data(HMAC<SHA256>.authenticationCode(for: prefix + Array(container.details), using: SymmetricKey(data: advSecret)))
        success.deviceIdentity = try container.serializedBytes()
        return success
    }

    @Test func wrongAccountKeyIsRejected() throws {
        let setup = try setup()
        let success = try resealed(issue(setup), advSecret: setup.credentials.advSecretKey) { account in
            account.accountSignatureKey = Data(Curve25519KeyPair.generate().publicKey)
        }
        let error = #expect(throws: PairingError.self) { try success.complete(credentials: setup.credentials) }
        #expect(error?.reason == .invalidAccountSignature)
        #expect(PairSuccess.errorReply(iqID: "ps-1", for: try #require(error)).child("error")?.attributes == ["code": "401", "text": "signature-mismatch"])
    }

    @Test func signatureForAnotherCompanionIsRejected() throws {
        let setup = try setup()
        let other = try DeviceCredentials.generate()
        let success = try setup.issuer.pairSuccess(
            iqID: "x", companionIdentityPublicKey: other.identityKey.publicKey, advSecretKey: setup.credentials.advSecretKey,
            jid: Self.jid, lid: nil, keyIndex: 1, timestamp: 1)
        #expect((#expect(throws: PairingError.self) { try success.complete(credentials: setup.credentials) })?.reason == .invalidAccountSignature)
    }

    @Test func hostedSignaturePrefixFollowsTheInnerDeviceType() throws {
        let setup = try setup()
        // Signed with 06 00 while the inner deviceType says HOSTED (so 06 05 is expected): rejected.
        let success = try resealed(issue(setup, accountType: .hosted, deviceType: .e2Ee), advSecret: setup.credentials.advSecretKey) { account in
            var details = try Wa_ADVDeviceIdentity(serializedBytes: account.details)
            details.deviceType = .hosted
            account.details = try details.serializedBytes()
            let message = [0x06, 0x00] + Array(account.details) + setup.credentials.identityKey.publicKey
            account.accountSignature = Data(try XEdDSA.sign(privateKey: setup.primaryKey.privateKey, message: message))
        }
        #expect((#expect(throws: PairingError.self) { try success.complete(credentials: setup.credentials) })?.reason == .invalidAccountSignature)
    }

    @Test func accountSignatureBitFlipAndBadLengthsAreRejected() throws {
        let setup = try setup()
        let flipped = try resealed(issue(setup), advSecret: setup.credentials.advSecretKey) { account in
            var signature = Array(account.accountSignature)
            signature[10] ^= 0x04
            account.accountSignature = Data(signature)
        }
        #expect((#expect(throws: PairingError.self) { try flipped.complete(credentials: setup.credentials) })?.reason == .invalidAccountSignature)
        let shortKey = try resealed(issue(setup), advSecret: setup.credentials.advSecretKey) { account in
            account.accountSignatureKey = Data([0x05] + setup.primaryKey.publicKey)
        }
        #expect((#expect(throws: PairingError.self) { try shortKey.complete(credentials: setup.credentials) })?.reason == .invalidAccountSignature)
        let noSignature = try resealed(issue(setup), advSecret: setup.credentials.advSecretKey) { account in
            account.clearAccountSignature()
        }
        #expect((#expect(throws: PairingError.self) { try noSignature.complete(credentials: setup.credentials) })?.reason == .invalidAccountSignature)
    }

    // MARK: Malformed input

    @Test func malformedProtobufIsRejected() throws {
        let setup = try setup()
        var success = try issue(setup)
        success.deviceIdentity = [0xFF, 0xFF, 0xFF]
        let error = #expect(throws: PairingError.self) { try success.complete(credentials: setup.credentials) }
        #expect(error?.reason == .malformedProtobuf)
        #expect(PairSuccess.errorReply(iqID: "ps-1", for: try #require(error)).child("error")?.attributes == ["code": "500", "text": "internal-error"])

        // A valid container whose details are not an ADVSignedDeviceIdentity.
        var container = Wa_ADVSignedDeviceIdentityHMAC()
        container.details = Data([0x0A, 0x05, 0x01])
        container.hmac = Data(HMAC<SHA256>.authenticationCode(for: [0x0A, 0x05, 0x01], using: SymmetricKey(data: setup.credentials.advSecretKey)))
        success.deviceIdentity = try container.serializedBytes()
        #expect((#expect(throws: PairingError.self) { try success.complete(credentials: setup.credentials) })?.reason == .malformedProtobuf)

        // A container without an HMAC.
        var noMAC = Wa_ADVSignedDeviceIdentityHMAC()
        noMAC.details = Data([1])
        success.deviceIdentity = try noMAC.serializedBytes()
        #expect((#expect(throws: PairingError.self) { try success.complete(credentials: setup.credentials) })?.reason == .malformedProtobuf)
    }

    static func withoutChild(_ tag: String, in node: Node) -> Node {
        var node = node
        guard case .nodes(var children) = node.content, case .nodes(let inner) = children[0].content else { return node }
        children[0].content = .nodes(inner.filter { $0.tag != tag })
        node.content = .nodes(children)
        return node
    }

    @Test func missingChildrenAreRejected() throws {
        let node = try issue(setup()).node
        for tag in ["device-identity", "device"] {
            let error = #expect(throws: PairingError.self) { try PairSuccess(parsing: Self.withoutChild(tag, in: node)) }
            #expect(error?.reason == .missingChild)
            #expect(error?.detail == tag)
        }
        let noSuccess = Node(tag: "iq", attributes: ["type": "set", "id": "1"], children: [Node(tag: "pair-device")])
        #expect((#expect(throws: PairingError.self) { try PairSuccess(parsing: noSuccess) })?.reason == .missingChild)
    }

    @Test func optionalPartsMayBeMissing() throws {
        var node = try issue(setup()).node
        node.attributes["t"] = nil
        node = Self.withoutChild("platform", in: Self.withoutChild("biz", in: node))
        if case .nodes(var children) = node.content, case .nodes(var inner) = children[0].content,
            let index = inner.firstIndex(where: { $0.tag == "device" })
        {
            inner[index].attributes["lid"] = nil
            children[0].content = .nodes(inner)
            node.content = .nodes(children)
        }
        let success = try PairSuccess(parsing: Support.overTheWire(node))
        #expect(success.platform == nil)
        #expect(success.businessName == nil)
        #expect(success.serverTime == nil)
        #expect(success.lid == nil)
        #expect(success.jid == Self.jid)
    }

    @Test func unusualPlatformsAndTextualJIDsAreKept() throws {
        let setup = try setup()
        var success = try issue(setup)
        success.platform = "IOS"
        var node = success.node
        node.attributes["t"] = "not-a-number"
        if case .nodes(var children) = node.content, case .nodes(var inner) = children[0].content,
            let index = inner.firstIndex(where: { $0.tag == "device" })
        {
            inner[index].attributes = ["jid": "12345678901:17@s.whatsapp.net", "lid": "98765432109876:17@lid"]
            children[0].content = .nodes(inner)
            node.content = .nodes(children)
        }
        let parsed = try PairSuccess(parsing: node)
        #expect(parsed.platform == "IOS")
        #expect(parsed.serverTime == nil)
        #expect(parsed.jid == Self.jid)
        #expect(parsed.lid == Self.lid)
        _ = try parsed.complete(credentials: setup.credentials)
    }

    @Test func pairSuccessFromAnotherSenderIsRejected() throws {
        var node = try issue(setup()).node
        node.attributes["from"] = .jid(.phoneNumber("123"))
        #expect((#expect(throws: PairingError.self) { try PairSuccess(parsing: node) })?.reason == .unexpectedNode)
    }

    // MARK: Primary's check of the reply

    func replyIdentityBytes(_ reply: Node) throws -> [UInt8] {
        try #require(reply.child(path: "pair-device-sign", "device-identity")?.contentBytes)
    }

    func replacingReplyIdentity(_ reply: Node, bytes: [UInt8], keyIndex: String = "7") -> Node {
        Node(
            tag: "iq", attributes: reply.attributes,
            children: [Node(tag: "pair-device-sign", children: [Node(tag: "device-identity", attributes: ["key-index": .string(keyIndex)], bytes: bytes)])])
    }

    @Test func primaryRejectsBadReplies() throws {
        let setup = try setup()
        let issued = try issue(setup)
        let reply = try issued.complete(credentials: setup.credentials).reply
        let companion = setup.credentials.identityKey.publicKey
        func reason(_ node: Node) -> PairingError.Reason? {
            (#expect(throws: PairingError.self) { try setup.issuer.verifyReply(node, to: issued, companionIdentityPublicKey: companion) })?.reason
        }
        var sent = try Wa_ADVSignedDeviceIdentity(serializedBytes: replyIdentityBytes(reply))

        var withKey = sent
        withKey.accountSignatureKey = Data(setup.primaryKey.publicKey)
        #expect(reason(replacingReplyIdentity(reply, bytes: try withKey.serializedBytes())) == .replyMismatch)

        var badSignature = sent
        var signature = Array(badSignature.deviceSignature)
        signature[0] ^= 0x01
        badSignature.deviceSignature = Data(signature)
        #expect(reason(replacingReplyIdentity(reply, bytes: try badSignature.serializedBytes())) == .invalidDeviceSignature)

        #expect(reason(replacingReplyIdentity(reply, bytes: try sent.serializedBytes(), keyIndex: "8")) == .replyMismatch)
        #expect(reason(replacingReplyIdentity(reply, bytes: try sent.serializedBytes(), keyIndex: "seven")) == .missingAttribute)
        sent.accountSignature = Data([UInt8](repeating: 0, count: 64))
        #expect(reason(replacingReplyIdentity(reply, bytes: try sent.serializedBytes())) == .replyMismatch)

        #expect(reason(Node(tag: "iq", attributes: ["type": "result", "id": "ps-1"])) == .missingChild)
        #expect(reason(Node(tag: "iq", attributes: ["type": "result", "id": "other"])) == .replyMismatch)
        let error = Node(tag: "iq", attributes: ["type": "error", "id": "ps-1"], children: [Node(tag: "error", attributes: ["code": "401"])])
        #expect(reason(error) == .unexpectedNode)
        // The companion's own error reply is understood as a refusal.
        #expect(reason(PairSuccess.errorReply(iqID: "ps-1", for: PairingError(.hmacMismatch))) == .unexpectedNode)
    }

    @Test func errorsCarryNoSecrets() throws {
        let setup = try setup()
        var other = setup.credentials
        other.advSecretKey = [UInt8](repeating: 0xAB, count: 32)
        let error = #expect(throws: PairingError.self) { try issue(setup).complete(credentials: other) }
        let text = String(describing: try #require(error))
        #expect(!text.contains("ab"))
        #expect(!text.contains("171"))
    }

    /// The field numbers of the top-level fields of a protobuf message (all length-delimited here).
    static func topLevelFieldNumbers(_ bytes: [UInt8]) -> [Int] {
        var numbers: [Int] = []
        var index = 0
        func varint() -> Int {
            var value = 0
            var shift = 0
            while index < bytes.count {
                let byte = bytes[index]
                index += 1
                value |= Int(byte & 0x7F) << shift
                if byte & 0x80 == 0 { break }
                shift += 7
            }
            return value
        }
        while index < bytes.count {
            let key = varint()
            numbers.append(key >> 3)
            guard key & 7 == 2 else { break }
            index += varint()
        }
        return numbers
    }
}
