import Crypto
import Testing
import WABinary
import WhatsAppServerSide

@testable import WhatsApp

@Suite struct LinkCodeTests {
    typealias Support = PairingTestSupport

    // MARK: Vectors (docs/protocol-notes.md#link-code)

    @Test(arguments: [
        ("0000000000", "11111111"), ("ffffffffff", "ZZZZZZZZ"), ("0001020304", "111H51R5"), ("a1b2c3d4e5", "M7SD8N86"),
    ])
    func codeEncodingVectors(input: String, expected: String) throws {
        #expect(try LinkCode(encoding: Support.bytes(hex: input)).rawValue == expected)
    }

    @Test func alphabetOmitsConfusableCharacters() {
        #expect(LinkCode.alphabet.count == 32)
        #expect(Set(LinkCode.alphabet).count == 32)
        for excluded in "0IOU".utf8 { #expect(!LinkCode.alphabet.contains(excluded)) }
    }

    @Test func randomCodesAreEightAlphabetCharacters() {
        for _ in 0..<50 {
            let code = LinkCode.random()
            #expect(code.rawValue.utf8.count == 8)
            #expect(code.rawValue.utf8.allSatisfy { LinkCode.alphabet.contains($0) })
            #expect(code.formatted == "\(code.rawValue.prefix(4))-\(code.rawValue.suffix(4))")
        }
    }

    @Test func typedCodesAreNormalised() throws {
        #expect(try LinkCode("ABCD-1234").rawValue == "ABCD1234")
        #expect(try LinkCode("abcd1234").rawValue == "ABCD1234")
        for bad in ["ABCD123", "ABCD12345", "ABCD123O", "ABCD1230", "ABCD123I", "ABCD123U", "AB-CD1234", "ABCD 1234", ""] {
            let error = #expect(throws: PairingError.self) { try LinkCode(bad) }
            #expect(error?.reason == .invalidLinkCode)
        }
        #expect(throws: PairingError.self) { try LinkCode(encoding: [1, 2, 3, 4]) }
    }

    @Test func codeDescriptionIsRedacted() throws {
        let code = try LinkCode("ABCD1234")
        #expect(!"\(code)".contains("ABCD"))
        #expect(!String(reflecting: code).contains("ABCD"))
    }

    @Test func pbkdf2Vector() throws {
        let key = try LinkCodeCrypto.codeKey(code: LinkCode("ABCD1234"), salt: Array(0..<32))
        #expect(key.withUnsafeBytes { Support.hex(Array($0)) } == "b04d4d0e43ffa6d1a3b2226d4ee58ba2900a470c09bcf39fb5257512a55c08bc")
    }

    /// Computed with Python `cryptography` (AES-CTR over the full 128-bit counter block); the IV's low 32 bits are all
    /// ones, so a 32-bit-counter implementation would produce a different second block.
    @Test func wrapVectorIncrementsTheFullCounterBlock() throws {
        let iv = [UInt8](repeating: 0, count: 12) + [0xFF, 0xFF, 0xFF, 0xFF]
        let wrapped = try LinkCodeCrypto.wrap(publicKey: Array(0x40..<0x60), code: LinkCode("ABCD1234"), salt: Array(0..<32), iv: iv)
        #expect(
            Support.hex(wrapped)
                == "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f000000000000000000000000ffffffff"
                + "ed647fa4c51310b70134280a51ecce5f55b3a115a7da4c8607556b149e99cbd6")
        #expect(try LinkCodeCrypto.unwrap(wrapped, code: LinkCode("ABCD1234")) == Array(0x40..<0x60))
        #expect(try LinkCodeCrypto.unwrap(wrapped + [1, 2, 3], code: LinkCode("ABCD1234")) == Array(0x40..<0x60))
        #expect(throws: PairingError.self) { try LinkCodeCrypto.unwrap(Array(wrapped.prefix(79)), code: LinkCode("ABCD1234")) }
    }

    /// Key bundle and ADV secret for fixed keys and randomness, computed independently with Python `cryptography`.
    @Test func keyBundleAndAdvSecretVector() throws {
        let companionEphemeral = try Curve25519KeyPair(privateKey: [UInt8](repeating: 1, count: 32))
        let primaryEphemeral = try Curve25519KeyPair(privateKey: [UInt8](repeating: 2, count: 32))
        let companionIdentity = try Curve25519KeyPair(privateKey: [UInt8](repeating: 3, count: 32))
        let primaryIdentity = try Curve25519KeyPair(privateKey: [UInt8](repeating: 4, count: 32))
        let code = try LinkCode("ABCD1234")
        let wrappedPrimary = try LinkCodeCrypto.wrap(
            publicKey: primaryEphemeral.publicKey, code: code, salt: Array(0x60..<0x80), iv: Array(0xA0..<0xB0))
        #expect(
            Support.hex(wrappedPrimary)
                == "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7fa0a1a2a3a4a5a6a7a8a9aaabacadaeaf"
                + "0d907fb17f3881500135df177503f932d7c698f5f29c1c7bff3f14b5db8467e7")

        let pairing = try LinkCodePairing(
            phoneNumber: "15551234567", code: code, ephemeralKey: companionEphemeral, salt: Array(0..<32), iv: Array(0..<16))
        let hello = PrimaryHello(
            notificationID: "n1", ref: Array("ref".utf8), wrappedPrimaryEphemeralPublicKey: wrappedPrimary,
            primaryIdentityPublicKey: primaryIdentity.publicKey)
        let completion = try pairing.receivePrimaryHello(
            hello, identityKey: companionIdentity, bundleSalt: [UInt8](repeating: 0x20, count: 32),
            bundleNonce: [UInt8](repeating: 0x30, count: 12), advRandom: [UInt8](repeating: 0x40, count: 32))
        #expect(
            Support.hex(completion.wrappedKeyBundle)
                == "2020202020202020202020202020202020202020202020202020202020202020303030303030303030303030"
                + "5be91ac1a6c92a76c609e6ba4fd044dd416af10554b36aa4f8dfc81962eec48915f0223fd728a163439c1bae4fbb0e3e"
                + "e38bf3b288f3ae3a8775ef43ef916842f07224a577472acbebcdcabec5fcd59081813edfa051553aa4a53464b6b19ee6"
                + "346701c244cac32af9531f249d7a0482")
        #expect(Support.hex(completion.advSecretKey) == "80c70fa02d96d92b4fb4aa2973abe626e61b446a71172750f15773e7c7554c8f")
        #expect(completion.identityPublicKey == companionIdentity.publicKey)
        #expect(completion.ref == Array("ref".utf8))
    }

    // MARK: Phone numbers

    @Test func phoneNumbersMustBeInternationalDigits() throws {
        #expect(try LinkCodeCrypto.phoneJID(for: "+1 (555) 123-4567") == .phoneNumber("15551234567"))
        #expect(try LinkCodeCrypto.phoneJID(for: "910000000000") == .phoneNumber("910000000000"))
        for bad in ["0123456789", "123456", "+44 abc 1234567", "", "+"] {
            let error = #expect(throws: PairingError.self) { try LinkCodePairing(phoneNumber: bad) }
            #expect(error?.reason == .invalidPhoneNumber)
        }
    }

    // MARK: Stanzas

    @Test func companionHelloHasEveryFieldOfTheSpec() throws {
        let credentials = try DeviceCredentials.generate()
        let pairing = try LinkCodePairing(phoneNumber: "15551234567")
        let node = pairing.companionHello(
            iqID: "h1", credentials: credentials, platformID: .chrome, platformDisplay: "Chrome (Mac OS)", showPushNotification: true
        ).node
        #expect(node.tag == "iq")
        #expect(node.attributes["to"] == .jid(.whatsappServer))
        #expect(node.attributes["type"] == "set")
        #expect(node.attributes["xmlns"] == "md")
        #expect(node.attributes["id"] == "h1")
        let registration = try #require(node.child("link_code_companion_reg"))
        #expect(registration.attributes["jid"] == .jid(.phoneNumber("15551234567")))
        #expect(registration.attributes["stage"] == "companion_hello")
        #expect(registration.attributes["should_show_push_notification"] == "true")
        #expect(registration.children.map(\.tag) == [
            "link_code_pairing_wrapped_companion_ephemeral_pub", "companion_server_auth_key_pub", "companion_platform_id",
            "companion_platform_display", "link_code_pairing_nonce",
        ])
        #expect(registration.child("link_code_pairing_wrapped_companion_ephemeral_pub")?.contentBytes?.count == 80)
        #expect(registration.child("companion_server_auth_key_pub")?.content == .bytes(credentials.noiseKey.publicKey))
        #expect(registration.child("companion_platform_id")?.content == .string("1"))
        #expect(registration.child("companion_platform_display")?.content == .string("Chrome (Mac OS)"))
        #expect(registration.child("link_code_pairing_nonce")?.content == .bytes([0x00]))

        // Over the wire the nonce stays one byte 00 and the whole request parses back.
        let received = try Support.overTheWire(node)
        #expect(received.child(path: "link_code_companion_reg", "link_code_pairing_nonce")?.contentBytes == [0x00])
        let hello = try CompanionHello(parsing: received)
        #expect(hello.node == node)
        #expect(hello.platformID == .chrome)
        #expect(hello.platformDisplay == "Chrome (Mac OS)")
        #expect(hello.showPushNotification)
        #expect(hello.noisePublicKey == credentials.noiseKey.publicKey)
    }

    @Test func primaryHelloIsParsedByNameWithOptionalAttributes() throws {
        let wrapped = [UInt8](repeating: 7, count: 80)
        let identity = [UInt8](repeating: 9, count: 32)
        // Children in another order, no t, no id, no stage.
        let node = Node(
            tag: "notification", attributes: ["from": .jid(.whatsappServer), "type": "link_code_companion_reg"],
            children: [
                Node(
                    tag: "link_code_companion_reg",
                    children: [
                        Node(tag: "primary_identity_pub", bytes: identity),
                        Node(tag: "something_new", bytes: [1]),
                        Node(tag: "link_code_pairing_wrapped_primary_ephemeral_pub", bytes: wrapped),
                        Node(tag: "link_code_pairing_ref", bytes: Array("R".utf8)),
                    ])
            ])
        let hello = try PrimaryHello(parsing: Support.overTheWire(node))
        #expect(hello.notificationID == nil)
        #expect(hello.stage == nil)
        #expect(hello.ref == Array("R".utf8))
        #expect(hello.wrappedPrimaryEphemeralPublicKey == wrapped)
        #expect(hello.primaryIdentityPublicKey == identity)
    }

    @Test func primaryHelloFailures() {
        func registration(_ children: [Node]) -> Node {
            Node(tag: "notification", attributes: ["type": "link_code_companion_reg"], children: [Node(tag: "link_code_companion_reg", children: children)])
        }
        let ref = Node(tag: "link_code_pairing_ref", bytes: [1])
        let wrapped = Node(tag: "link_code_pairing_wrapped_primary_ephemeral_pub", bytes: [UInt8](repeating: 0, count: 80))
        let identity = Node(tag: "primary_identity_pub", bytes: [UInt8](repeating: 0, count: 32))
        func reason(_ node: Node) -> PairingError.Reason? {
            (#expect(throws: PairingError.self) { try PrimaryHello(parsing: node) })?.reason
        }
        #expect(reason(registration([wrapped, identity])) == .missingChild)
        #expect(reason(registration([ref, identity])) == .missingChild)
        #expect(reason(registration([ref, wrapped])) == .missingChild)
        #expect(reason(registration([ref, Node(tag: "link_code_pairing_wrapped_primary_ephemeral_pub", bytes: [UInt8](repeating: 0, count: 79)), identity])) == .malformedContent)
        #expect(reason(registration([ref, wrapped, Node(tag: "primary_identity_pub", bytes: [1, 2])])) == .malformedContent)
        #expect(reason(Node(tag: "notification", attributes: ["type": "link_code_companion_reg"])) == .missingChild)
        #expect(reason(Node(tag: "notification", attributes: ["type": "devices"])) == .unexpectedNode)
        #expect(reason(Node(tag: "iq")) == .unexpectedNode)
    }

    @Test func helloResponseRecordsTheRefAndErrorsAreTyped() throws {
        var pairing = try LinkCodePairing(phoneNumber: "15551234567")
        let hello = pairing.companionHello(iqID: "h1", credentials: try DeviceCredentials.generate(), platformID: .chrome, platformDisplay: "Chrome (Linux)")
        try pairing.receiveHelloResponse(Support.overTheWire(hello.responseNode(ref: Array("REF-1".utf8))))
        #expect(pairing.ref == Array("REF-1".utf8))

        var other = try LinkCodePairing(phoneNumber: "15551234567")
        let errorReply = Node(tag: "iq", attributes: ["type": "error", "id": "h1"], children: [Node(tag: "error", attributes: ["code": "400", "text": "bad-request"])])
        let error = #expect(throws: PairingError.self) { try other.receiveHelloResponse(errorReply) }
        #expect(error?.reason == .unexpectedNode)
        #expect(error?.description.contains("400") == true)
        let missing = #expect(throws: PairingError.self) { try other.receiveHelloResponse(Node(tag: "iq", attributes: ["type": "result"])) }
        #expect(missing?.reason == .missingChild)
        #expect(other.ref == nil)
    }

    // MARK: Round trip

    struct Exchange {
        var credentials: DeviceCredentials
        var pairing: LinkCodePairing
        var primaryIdentity: Curve25519KeyPair
        var hello: CompanionHello
        var ref: [UInt8]
    }

    func startExchange() throws -> Exchange {
        let credentials = try DeviceCredentials.generate()
        var pairing = try LinkCodePairing(phoneNumber: "+44 7700 900123")
        let helloNode = pairing.companionHello(iqID: "h1", credentials: credentials, platformID: .firefox, platformDisplay: "Firefox (Linux)").node
        let hello = try CompanionHello(parsing: Support.overTheWire(helloNode))
        let ref = Array("2@link-ref".utf8)
        try pairing.receiveHelloResponse(Support.overTheWire(hello.responseNode(ref: ref)))
        return Exchange(credentials: credentials, pairing: pairing, primaryIdentity: .generate(), hello: hello, ref: ref)
    }

    @Test func companionAndPrimaryDeriveTheSameAdvSecret() throws {
        let exchange = try startExchange()
        #expect(exchange.hello.phoneJID == .phoneNumber("447700900123"))

        let primary = try LinkCodePrimary(
            typedCode: exchange.pairing.code.formatted.lowercased(), hello: exchange.hello, ref: exchange.ref,
            identityKey: exchange.primaryIdentity, notificationID: "n1")
        let notification = try PrimaryHello(parsing: Support.overTheWire(primary.primaryHello.node))
        #expect(notification.notificationID == "n1")
        #expect(notification.stage == "primary_hello")

        let completion = try exchange.pairing.receivePrimaryHello(notification, identityKey: exchange.credentials.identityKey)
        #expect(completion.advSecretKey.count == 32)
        #expect(completion.advSecretKey != exchange.credentials.advSecretKey)
        #expect(completion.wrappedKeyBundle.count == 156)
        let updated = completion.applied(to: exchange.credentials)
        #expect(updated.advSecretKey == completion.advSecretKey)
        #expect(updated.identityKey == exchange.credentials.identityKey)

        let finishNode = completion.companionFinish(iqID: "f1").node
        #expect(finishNode.attributes["xmlns"] == "md")
        #expect(finishNode.child("link_code_companion_reg")?.attributes["stage"] == "companion_finish")
        let finish = try CompanionFinish(parsing: Support.overTheWire(finishNode))
        #expect(finish.ref == exchange.ref)
        #expect(finish.identityPublicKey == exchange.credentials.identityKey.publicKey)

        let result = try primary.receiveCompanionFinish(finish)
        #expect(result.advSecretKey == completion.advSecretKey)
        #expect(result.companionIdentityPublicKey == exchange.credentials.identityKey.publicKey)

        // The derived secret is what pair-success is keyed with.
        let issuer = PairSuccessIssuer(accountSigningKey: exchange.primaryIdentity)
        let success = try issuer.pairSuccess(
            iqID: "ps", companionIdentityPublicKey: result.companionIdentityPublicKey, advSecretKey: result.advSecretKey,
            jid: .phoneNumber("447700900123", device: 4), lid: nil, keyIndex: 2, timestamp: 1_700_000_000)
        #expect(try success.complete(credentials: updated).keyIndex == 2)
        let stale = #expect(throws: PairingError.self) { try success.complete(credentials: exchange.credentials) }
        #expect(stale?.reason == .hmacMismatch)
    }

    @Test func wrongTypedCodeFailsWhenThePrimaryOpensTheBundle() throws {
        let exchange = try startExchange()
        var wrong = exchange.pairing.code.rawValue
        let last = wrong.removeLast()
        wrong.append(last == "Z" ? "Y" : "Z")
        let primary = try LinkCodePrimary(typedCode: wrong, hello: exchange.hello, ref: exchange.ref, identityKey: exchange.primaryIdentity)
        let completion = try exchange.pairing.receivePrimaryHello(primary.primaryHello, identityKey: exchange.credentials.identityKey)
        let error = #expect(throws: PairingError.self) { try primary.receiveCompanionFinish(completion.companionFinish(iqID: "f")) }
        #expect(error?.reason == .keyBundleDecryptionFailed)
    }

    @Test(arguments: [0, 40, 60, 79])
    func tamperedPrimaryWrappedKeyFailsTheExchange(flippedByte: Int) throws {
        let exchange = try startExchange()
        let primary = try LinkCodePrimary(typedCode: exchange.pairing.code.rawValue, hello: exchange.hello, ref: exchange.ref, identityKey: exchange.primaryIdentity)
        var tampered = primary.primaryHello
        tampered.wrappedPrimaryEphemeralPublicKey[flippedByte] ^= 0x01
        let completion = try exchange.pairing.receivePrimaryHello(tampered, identityKey: exchange.credentials.identityKey)
        let error = #expect(throws: PairingError.self) { try primary.receiveCompanionFinish(completion.companionFinish(iqID: "f")) }
        #expect(error?.reason == .keyBundleDecryptionFailed)
    }

    @Test func tamperedCompanionWrappedKeyFailsTheExchange() throws {
        var exchange = try startExchange()
        exchange.hello.wrappedCompanionEphemeralPublicKey[50] ^= 0x80
        let primary = try LinkCodePrimary(typedCode: exchange.pairing.code.rawValue, hello: exchange.hello, ref: exchange.ref, identityKey: exchange.primaryIdentity)
        let completion = try exchange.pairing.receivePrimaryHello(primary.primaryHello, identityKey: exchange.credentials.identityKey)
        let error = #expect(throws: PairingError.self) { try primary.receiveCompanionFinish(completion.companionFinish(iqID: "f")) }
        #expect(error?.reason == .keyBundleDecryptionFailed)
    }

    @Test func tamperedBundleAndMismatchedIdentityAreRejected() throws {
        let exchange = try startExchange()
        let primary = try LinkCodePrimary(typedCode: exchange.pairing.code.rawValue, hello: exchange.hello, ref: exchange.ref, identityKey: exchange.primaryIdentity)
        let completion = try exchange.pairing.receivePrimaryHello(primary.primaryHello, identityKey: exchange.credentials.identityKey)
        var finish = completion.companionFinish(iqID: "f")
        finish.wrappedKeyBundle[100] ^= 0x01
        #expect((#expect(throws: PairingError.self) { try primary.receiveCompanionFinish(finish) })?.reason == .keyBundleDecryptionFailed)

        var otherIdentity = completion.companionFinish(iqID: "f")
        otherIdentity.identityPublicKey = Curve25519KeyPair.generate().publicKey
        #expect((#expect(throws: PairingError.self) { try primary.receiveCompanionFinish(otherIdentity) })?.reason == .keyBundleMismatch)

        var otherRef = completion.companionFinish(iqID: "f")
        otherRef.ref = Array("other".utf8)
        #expect((#expect(throws: PairingError.self) { try primary.receiveCompanionFinish(otherRef) })?.reason == .refMismatch)
    }

    @Test func primaryHelloWithAnotherRefIsRejected() throws {
        let exchange = try startExchange()
        let primary = try LinkCodePrimary(typedCode: exchange.pairing.code.rawValue, hello: exchange.hello, ref: Array("other-ref".utf8), identityKey: exchange.primaryIdentity)
        let error = #expect(throws: PairingError.self) {
            try exchange.pairing.receivePrimaryHello(primary.primaryHello, identityKey: exchange.credentials.identityKey)
        }
        #expect(error?.reason == .refMismatch)
    }

    @Test func companionFinishParsingFailures() throws {
        let exchange = try startExchange()
        let primary = try LinkCodePrimary(typedCode: exchange.pairing.code.rawValue, hello: exchange.hello, ref: exchange.ref, identityKey: exchange.primaryIdentity)
        let node = try exchange.pairing.receivePrimaryHello(primary.primaryHello, identityKey: exchange.credentials.identityKey)
            .companionFinish(iqID: "f").node
        var shortBundle = node
        if case .nodes(var children) = shortBundle.content, case .nodes(var inner) = children[0].content {
            inner[0] = Node(tag: "link_code_pairing_wrapped_key_bundle", bytes: [UInt8](repeating: 0, count: 155))
            children[0].content = .nodes(inner)
            shortBundle.content = .nodes(children)
        }
        #expect((#expect(throws: PairingError.self) { try CompanionFinish(parsing: shortBundle) })?.reason == .malformedContent)
        var wrongStage = node
        if case .nodes(var children) = wrongStage.content {
            children[0].attributes["stage"] = "companion_hello"
            wrongStage.content = .nodes(children)
        }
        #expect((#expect(throws: PairingError.self) { try CompanionFinish(parsing: wrongStage) })?.reason == .unexpectedNode)
    }

    @Test func descriptionsHideSecrets() throws {
        let exchange = try startExchange()
        let code = exchange.pairing.code.rawValue
        #expect(!"\(exchange.pairing)".contains(code))
        let primary = try LinkCodePrimary(typedCode: code, hello: exchange.hello, ref: exchange.ref, identityKey: exchange.primaryIdentity)
        let completion = try exchange.pairing.receivePrimaryHello(primary.primaryHello, identityKey: exchange.credentials.identityKey)
        #expect(!"\(completion)".contains(Support.hex(completion.advSecretKey)))
        #expect(!String(reflecting: completion).contains(completion.advSecretKey.map(String.init).joined(separator: ", ")))
        let result = try primary.receiveCompanionFinish(completion.companionFinish(iqID: "f"))
        #expect(!String(reflecting: result).contains(result.advSecretKey.map(String.init).joined(separator: ", ")))
    }
}
