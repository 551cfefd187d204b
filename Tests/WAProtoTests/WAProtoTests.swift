import Foundation
import SwiftProtobuf
import Testing
import WahostBasics
import WAProto

// Wire-level tests of the generated WAProto messages.
//
// Expected byte strings are written out by hand from the field numbers in
// Protos/wa.proto: a tag byte is (field number << 3) | wire type, with wire
// type 0 for varints (ints, bools, enums) and 2 for length-delimited values
// (bytes, strings, sub-messages). Tags of fields >= 16 take two varint bytes.

// MARK: - Helpers

private func bytes(_ hex: String) -> [UInt8] {
    let digits = hex.filter { !$0.isWhitespace }
    precondition(digits.count.isMultiple(of: 2), "odd hex string")
    var out: [UInt8] = []
    var index = digits.startIndex
    while index < digits.endIndex {
        let next = digits.index(index, offsetBy: 2)
        out.append(UInt8(digits[index..<next], radix: 16)!)
        index = next
    }
    return out
}

private func repeating(_ byte: UInt8, _ count: Int) -> [UInt8] {
    [UInt8](repeating: byte, count: count)
}

/// 0x00, 0x01, ..., 0x1F: a recognisable 32-byte key.
private let key32: [UInt8] = Array(0..<32)

// MARK: - HandshakeMessage (docs/protocol-notes.md#noise-handshake)

@Suite("HandshakeMessage")
struct HandshakeMessageTests {
    @Test("ClientHello with a 32-byte ephemeral has the documented 36-byte layout")
    func clientHelloExactBytes() throws {
        var message = Wa_HandshakeMessage()
        message.clientHello.ephemeral = Data(key32)

        let encoded: [UInt8] = try message.serializedBytes()
        // 0x12 = field 2 (clientHello), LEN; 0x22 = 34 bytes follow.
        // 0x0A = field 1 (ephemeral), LEN; 0x20 = 32 bytes follow.
        #expect(encoded == bytes("12 22 0A 20") + key32)
        // The frame length after the 4-byte WA header is 00 00 24 (= 36).
        #expect(encoded.count == 0x24)

        let decoded = try Wa_HandshakeMessage(serializedBytes: encoded)
        #expect(decoded == message)
        #expect(decoded.hasClientHello)
        #expect(!decoded.hasServerHello)
        #expect(!decoded.hasClientFinish)
        #expect(decoded.clientHello.ephemeral == Data(key32))
        #expect(!decoded.clientHello.hasStatic)
        #expect(!decoded.clientHello.hasPayload)
    }

    @Test("ServerHello parses from hand-built bytes")
    func serverHelloFromBytes() throws {
        let ephemeral = repeating(0xE1, 32)
        let encryptedStatic = repeating(0x5A, 48)
        let encryptedPayload: [UInt8] = [0xC0, 0xFF, 0xEE, 0x00, 0x01]
        // Inner: (2 + 32) + (2 + 48) + (2 + 5) = 91 = 0x5B bytes.
        let wire =
            bytes("1A 5B")  // field 3 (serverHello), LEN 91
            + bytes("0A 20") + ephemeral  // field 1 (ephemeral)
            + bytes("12 30") + encryptedStatic  // field 2 (static), 48 bytes
            + bytes("1A 05") + encryptedPayload  // field 3 (payload)

        let decoded = try Wa_HandshakeMessage(serializedBytes: wire)
        #expect(decoded.hasServerHello)
        #expect(!decoded.hasClientHello)
        #expect(decoded.serverHello.ephemeral == Data(ephemeral))
        #expect(decoded.serverHello.static == Data(encryptedStatic))
        #expect(decoded.serverHello.payload == Data(encryptedPayload))
        #expect(!decoded.serverHello.hasExtendedStatic)

        // Re-encoding gives the same bytes (fields were already in order).
        #expect(try decoded.serializedBytes() == wire)
    }

    @Test("ClientFinish round-trips with exact bytes")
    func clientFinishExactBytes() throws {
        let encryptedStatic = repeating(0xAA, 48)
        let encryptedPayload: [UInt8] = [0x01, 0x02, 0x03]
        var message = Wa_HandshakeMessage()
        message.clientFinish.static = Data(encryptedStatic)
        message.clientFinish.payload = Data(encryptedPayload)

        let encoded: [UInt8] = try message.serializedBytes()
        // Inner: (2 + 48) + (2 + 3) = 55 = 0x37 bytes.
        let expected =
            bytes("22 37")  // field 4 (clientFinish), LEN 55
            + bytes("0A 30") + encryptedStatic  // field 1 (static)
            + bytes("12 03") + encryptedPayload  // field 2 (payload)
        #expect(encoded == expected)
        #expect(try Wa_HandshakeMessage(serializedBytes: encoded) == message)
    }

    @Test("Fields this subset leaves out survive a parse/serialize cycle")
    func unknownFieldsArePreserved() throws {
        // whatsmeow's schema has ClientHello.pqMode = 9 (varint); ours omits it.
        // Tag 9 << 3 | 0 = 0x48.
        let wire = bytes("12 24 0A 20") + key32 + bytes("48 03")
        let decoded = try Wa_HandshakeMessage(serializedBytes: wire)
        #expect(decoded.clientHello.ephemeral == Data(key32))
        #expect(decoded.clientHello.unknownFields.data == Data(bytes("48 03")))
        #expect(try decoded.serializedBytes() == wire)
    }
}

// MARK: - CertChain (docs/protocol-notes.md#noise-certificate-chain)

@Suite("CertChain")
struct CertChainTests {
    @Test("Details encodes every field, including an explicit issuerSerial of 0")
    func detailsExactBytes() throws {
        var details = Wa_CertChain.NoiseCertificate.Details()
        details.serial = 7
        details.issuerSerial = 0  // the root; proto2 keeps the explicit zero
        details.key = Data(key32)
        details.notBefore = 1_700_000_000
        details.notAfter = 1_800_000_000

        let encoded: [UInt8] = try details.serializedBytes()
        let expected =
            bytes("08 07")  // field 1 (serial) = 7
            + bytes("10 00")  // field 2 (issuerSerial) = 0
            + bytes("1A 20") + key32  // field 3 (key)
            + bytes("20 80 E2 CF AA 06")  // field 4 (notBefore) = 1_700_000_000
            + bytes("28 80 A4 A7 DA 06")  // field 5 (notAfter) = 1_800_000_000
        #expect(encoded == expected)

        let decoded = try Wa_CertChain.NoiseCertificate.Details(serializedBytes: encoded)
        #expect(decoded == details)
        #expect(decoded.hasIssuerSerial)
        #expect(decoded.issuerSerial == 0)
    }

    @Test("Certificate details stay the exact bytes received, even in a non-canonical order")
    func detailsBytesAreOpaque() throws {
        // Signatures cover `details` as received. Build details with fields in
        // descending order, which no SwiftProtobuf encoder would produce.
        let leafDetails = bytes("28 02 20 01 1A 20") + key32 + bytes("10 09 08 0A")
        let leafSignature = repeating(0x51, 64)
        let intermediateDetails = bytes("08 09 10 00")
        let intermediateSignature = repeating(0x52, 64)

        var chain = Wa_CertChain()
        chain.leaf.details = Data(leafDetails)
        chain.leaf.signature = Data(leafSignature)
        chain.intermediate.details = Data(intermediateDetails)
        chain.intermediate.signature = Data(intermediateSignature)

        let decoded = try Wa_CertChain(serializedBytes: try chain.serializedBytes() as [UInt8])
        #expect(decoded == chain)
        #expect(Array(decoded.leaf.details) == leafDetails)
        #expect(decoded.intermediate.signature.count == 64)

        let leaf = try Wa_CertChain.NoiseCertificate.Details(serializedBytes: decoded.leaf.details)
        #expect(leaf.serial == 10)
        #expect(leaf.issuerSerial == 9)
        #expect(leaf.key == Data(key32))
        #expect(leaf.notBefore == 1)
        #expect(leaf.notAfter == 2)
        let intermediate = try Wa_CertChain.NoiseCertificate.Details(serializedBytes: decoded.intermediate.details)
        #expect(intermediate.serial == 9)
        #expect(intermediate.hasIssuerSerial && intermediate.issuerSerial == 0)
        #expect(!intermediate.hasKey)
    }
}

// MARK: - ClientPayload (docs/protocol-notes.md#client-payload)

@Suite("ClientPayload")
struct ClientPayloadTests {
    @Test("username/passive/device/pull have the hand-computed layout")
    func smallPayloadExactBytes() throws {
        var payload = Wa_ClientPayload()
        payload.username = 1
        payload.passive = false
        payload.device = 2
        payload.pull = true

        let encoded: [UInt8] = try payload.serializedBytes()
        let expected =
            bytes("08 01")  // field 1 (username) = 1
            + bytes("18 00")  // field 3 (passive) = false, present
            + bytes("90 01 02")  // field 18 (device): tag 144 = 90 01; value 2
            + bytes("88 02 01")  // field 33 (pull): tag 264 = 88 02; value true
        #expect(encoded == expected)

        let decoded = try Wa_ClientPayload(serializedBytes: encoded)
        #expect(decoded == payload)
        #expect(decoded.hasPassive && decoded.passive == false)
    }

    @Test("Registration payload keeps explicit passive=false and pull=false")
    func registrationPresence() throws {
        var payload = Wa_ClientPayload()
        payload.passive = false
        payload.pull = false
        payload.connectType = .wifiUnknown
        payload.connectReason = .userActivated

        let encoded: [UInt8] = try payload.serializedBytes()
        #expect(encoded == bytes("18 00  60 01  68 01  88 02 00"))

        let decoded = try Wa_ClientPayload(serializedBytes: encoded)
        #expect(decoded.hasPassive)
        #expect(decoded.passive == false)
        #expect(decoded.hasPull)
        #expect(decoded.pull == false)
        #expect(!decoded.hasUsername)
        #expect(!decoded.hasDevice)
        #expect(decoded == payload)

        // An unset field is absent, which is not the same message.
        var unset = decoded
        unset.clearPassive()
        unset.clearPull()
        #expect(!unset.hasPassive)
        #expect(unset.passive == false)  // default value, but not present
        #expect(unset != decoded)
        #expect(try unset.serializedBytes() == bytes("60 01 68 01"))
    }

    @Test("A whatsmeow-style login payload round-trips")
    func loginRoundTrip() throws {
        var payload = Wa_ClientPayload()
        payload.username = 15_551_234_567
        payload.device = 17
        payload.passive = true
        payload.pull = true
        payload.lc = 1
        payload.lidDbMigrated = true
        payload.connectType = .wifiUnknown
        payload.connectReason = .userActivated
        payload.userAgent.platform = .web
        payload.userAgent.appVersion.primary = 2
        payload.userAgent.appVersion.secondary = 3000
        payload.userAgent.appVersion.tertiary = 1_045_649_367
        payload.userAgent.mcc = "000"
        payload.userAgent.mnc = "000"
        payload.userAgent.osVersion = "0.1"
        payload.userAgent.manufacturer = ""  // whatsmeow sends it present but empty
        payload.userAgent.device = "Desktop"
        payload.userAgent.osBuildNumber = "0.1"
        payload.userAgent.releaseChannel = .release
        payload.userAgent.localeLanguageIso6391 = "en"
        payload.userAgent.localeCountryIso31661Alpha2 = "US"
        payload.webInfo.webSubPlatform = .webBrowser

        let encoded: [UInt8] = try payload.serializedBytes()
        // Starts with username (field 1, 15_551_234_567 = 87 84 B4 F7 39) and
        // passive (field 3) = true, then userAgent (field 5, LEN).
        #expect(encoded.starts(with: bytes("08 87 84 B4 F7 39  18 01  2A")))

        let decoded = try Wa_ClientPayload(serializedBytes: encoded)
        #expect(decoded == payload)
        #expect(decoded.username == 15_551_234_567)
        #expect(decoded.device == 17)
        #expect(decoded.passive && decoded.pull)
        #expect(decoded.hasLc && decoded.lc == 1)
        #expect(decoded.userAgent.platform == .web)
        #expect(decoded.userAgent.appVersion.tertiary == 1_045_649_367)
        #expect(decoded.userAgent.hasManufacturer && decoded.userAgent.manufacturer.isEmpty)
        #expect(decoded.userAgent.hasReleaseChannel)
        #expect(!decoded.userAgent.hasPhoneID)
        #expect(decoded.webInfo.hasWebSubPlatform)
        #expect(!decoded.hasDevicePairingData)
    }

    @Test("Registration data with nested DeviceProps bytes round-trips")
    func devicePairingDataRoundTrip() throws {
        var props = Wa_DeviceProps()
        props.os = "wahost"
        props.version.primary = 0
        props.version.secondary = 1
        props.version.tertiary = 0
        props.platformType = .unknown
        props.requireFullSync = false
        props.historySyncConfig.storageQuotaMb = 10240
        props.historySyncConfig.inlineInitialPayloadInE2EeMsg = true
        props.historySyncConfig.supportCallLogHistory = true
        props.historySyncConfig.thumbnailSyncDaysLimit = 60
        props.historySyncConfig.supportManusHistory = true
        props.historySyncConfig.supportedBotChannelFbids = ["a", "b"]
        let propsBytes: [UInt8] = try props.serializedBytes()
        // os (field 1) comes first; platformType 0 (field 3) is present.
        #expect(propsBytes.starts(with: bytes("0A 06") + Array("wahost".utf8)))
        #expect(propsBytes.contains(0x18))

        var payload = Wa_ClientPayload()
        payload.passive = false
        payload.pull = false
        payload.devicePairingData.eRegid = Data(bytes("12 34 56 78"))
        payload.devicePairingData.eKeytype = Data([0x05])
        payload.devicePairingData.eIdent = Data(key32)
        payload.devicePairingData.eSkeyID = Data(bytes("00 00 01"))
        payload.devicePairingData.eSkeyVal = Data(repeating(0x77, 32))
        payload.devicePairingData.eSkeySig = Data(repeating(0x88, 64))
        // MD5("2.3000.1045649367"), the value given in docs/protocol-notes.md#client-payload.
        payload.devicePairingData.buildHash = Data(bytes("9fa53af9421567b114e33c9bb1ef7db2"))
        payload.devicePairingData.deviceProps = Data(propsBytes)

        let decoded = try Wa_ClientPayload(serializedBytes: try payload.serializedBytes() as [UInt8])
        #expect(decoded == payload)
        let data = decoded.devicePairingData
        #expect(data.eRegid.count == 4)
        #expect(data.eKeytype == Data([0x05]))
        #expect(data.eSkeyID == Data([0, 0, 1]))
        #expect(data.buildHash.count == 16)

        let decodedProps = try Wa_DeviceProps(serializedBytes: data.deviceProps)
        #expect(decodedProps == props)
        #expect(decodedProps.hasPlatformType && decodedProps.platformType == .unknown)
        #expect(decodedProps.hasRequireFullSync && !decodedProps.requireFullSync)
        #expect(decodedProps.historySyncConfig.storageQuotaMb == 10240)
        #expect(decodedProps.historySyncConfig.supportedBotChannelFbids == ["a", "b"])
        #expect(!decodedProps.historySyncConfig.hasSupportGroupHistory)
    }

    @Test("DeviceProps in Baileys' default shape has the hand-computed layout")
    func devicePropsExactBytes() throws {
        var props = Wa_DeviceProps()
        props.os = "Mac OS"
        props.version.primary = 10
        props.version.secondary = 15
        props.version.tertiary = 7
        props.platformType = .chrome
        props.requireFullSync = true

        let expected =
            bytes("0A 06") + Array("Mac OS".utf8)  // field 1 (os)
            + bytes("12 06 08 0A 10 0F 18 07")  // field 2 (version) = {10, 15, 7}
            + bytes("18 01")  // field 3 (platformType) = CHROME
            + bytes("20 01")  // field 4 (requireFullSync) = true
        #expect(try props.serializedBytes() == expected)
        #expect(try Wa_DeviceProps(serializedBytes: expected) == props)
    }

    @Test("Enum raw values match the protocol notes")
    func enumValues() {
        typealias UA = Wa_ClientPayload.UserAgent
        #expect(UA.Platform.android.rawValue == 0)
        #expect(UA.Platform.ios.rawValue == 1)
        #expect(UA.Platform.web.rawValue == 14)
        #expect(UA.Platform.macos.rawValue == 24)
        #expect(UA.ReleaseChannel.release.rawValue == 0)
        #expect(UA.ReleaseChannel.debug.rawValue == 3)
        #expect(UA.DeviceType.desktop.rawValue == 2)
        #expect(UA.DeviceType.vr.rawValue == 4)
        #expect(Wa_ClientPayload.WebInfo.WebSubPlatform.webBrowser.rawValue == 0)
        #expect(Wa_ClientPayload.WebInfo.WebSubPlatform.darwin.rawValue == 3)
        #expect(Wa_ClientPayload.WebInfo.WebSubPlatform.win32.rawValue == 4)
        #expect(Wa_ClientPayload.WebInfo.WebSubPlatform.winHybrid.rawValue == 5)
        #expect(Wa_ClientPayload.ConnectType.cellularUnknown.rawValue == 0)
        #expect(Wa_ClientPayload.ConnectType.wifiUnknown.rawValue == 1)
        #expect(Wa_ClientPayload.ConnectReason.push.rawValue == 0)
        #expect(Wa_ClientPayload.ConnectReason.userActivated.rawValue == 1)
        #expect(Wa_ClientPayload.ConnectReason.unknown.rawValue == 6)
        #expect(Wa_DeviceProps.PlatformType.unknown.rawValue == 0)
        #expect(Wa_DeviceProps.PlatformType.chrome.rawValue == 1)
        #expect(Wa_DeviceProps.PlatformType.desktop.rawValue == 7)
        #expect(Wa_DeviceProps.PlatformType.smartglasses.rawValue == 24)
        #expect(Wa_ADVEncryptionType.e2Ee.rawValue == 0)
        #expect(Wa_ADVEncryptionType.hosted.rawValue == 1)
    }
}

// MARK: - ADV (docs/protocol-notes.md#pair-success)

@Suite("ADV")
struct ADVTests {
    @Test("Three-level pair-success nesting round-trips; the reply drops accountSignatureKey")
    func signedDeviceIdentityNesting() throws {
        var identity = Wa_ADVDeviceIdentity()
        identity.rawID = 5
        identity.timestamp = 1_700_000_000
        identity.keyIndex = 3
        identity.accountType = .e2Ee
        identity.deviceType = .hosted
        let identityBytes: [UInt8] = try identity.serializedBytes()
        #expect(
            identityBytes
                == bytes("08 05")  // rawId = 5
                + bytes("10 80 E2 CF AA 06")  // timestamp = 1_700_000_000
                + bytes("18 03")  // keyIndex = 3
                + bytes("20 00")  // accountType = E2EE, present
                + bytes("28 01")  // deviceType = HOSTED
        )

        var signed = Wa_ADVSignedDeviceIdentity()
        signed.details = Data(identityBytes)
        signed.accountSignatureKey = Data(repeating(0x11, 32))
        signed.accountSignature = Data(repeating(0x22, 64))
        signed.deviceSignature = Data(repeating(0x33, 64))
        let signedBytes: [UInt8] = try signed.serializedBytes()

        var container = Wa_ADVSignedDeviceIdentityHMAC()
        container.details = Data(signedBytes)
        container.hmac = Data(repeating(0x44, 32))
        container.accountType = .hosted
        let wire: [UInt8] = try container.serializedBytes()

        // Unwrap as pair-success handling does.
        let outer = try Wa_ADVSignedDeviceIdentityHMAC(serializedBytes: wire)
        #expect(outer.accountType == .hosted)
        #expect(outer.hmac.count == 32)
        #expect(Array(outer.details) == signedBytes)
        let middle = try Wa_ADVSignedDeviceIdentity(serializedBytes: outer.details)
        #expect(middle == signed)
        let inner = try Wa_ADVDeviceIdentity(serializedBytes: middle.details)
        #expect(inner == identity)
        #expect(inner.hasAccountType && inner.accountType == .e2Ee)
        #expect(inner.deviceType == .hosted)

        // The pair-device-sign reply omits field 2 (accountSignatureKey).
        var reply = middle
        reply.clearAccountSignatureKey()
        let replyBytes: [UInt8] = try reply.serializedBytes()
        #expect(replyBytes.count == signedBytes.count - (2 + 32))
        #expect(
            replyBytes
                == [0x0A, UInt8(identityBytes.count)] + identityBytes  // field 1 (details)
                + bytes("1A 40") + repeating(0x22, 64)  // field 3 (accountSignature)
                + bytes("22 40") + repeating(0x33, 64)  // field 4 (deviceSignature)
        )
        let reparsed = try Wa_ADVSignedDeviceIdentity(serializedBytes: replyBytes)
        #expect(!reparsed.hasAccountSignatureKey)
        #expect(reparsed.hasDeviceSignature)
    }

    @Test("ADVKeyIndexList writes validIndexes packed and also reads the unpacked form")
    func keyIndexListPacked() throws {
        var list = Wa_ADVKeyIndexList()
        list.rawID = 5
        list.validIndexes = [1, 2, 300]
        let encoded: [UInt8] = try list.serializedBytes()
        // field 4, LEN 4: 01, 02, AC 02 (= 300)
        #expect(encoded == bytes("08 05  22 04 01 02 AC 02"))
        #expect(try Wa_ADVKeyIndexList(serializedBytes: encoded) == list)

        // Parsers must also accept one varint per element (tag 4 << 3 | 0 = 0x20).
        let unpacked = try Wa_ADVKeyIndexList(serializedBytes: bytes("20 01 20 02 20 AC 02"))
        #expect(unpacked.validIndexes == [1, 2, 300])

        var signedList = Wa_ADVSignedKeyIndexList()
        signedList.details = Data(encoded)
        signedList.accountSignature = Data(repeating(0x01, 64))
        let decoded = try Wa_ADVSignedKeyIndexList(serializedBytes: try signedList.serializedBytes() as [UInt8])
        #expect(decoded == signedList)
        #expect(!decoded.hasAccountSignatureKey)
    }

    @Test("ClientPairingProps round-trips")
    func clientPairingProps() throws {
        var props = Wa_ClientPairingProps()
        props.isChatDbLidMigrated = true
        props.isSyncdPureLidSession = false
        props.subscriptionSyncPayload = Data([0xDE, 0xAD])
        let encoded: [UInt8] = try props.serializedBytes()
        #expect(encoded == bytes("08 01  10 00  2A 02 DE AD"))
        #expect(try Wa_ClientPairingProps(serializedBytes: encoded) == props)
    }
}

// MARK: - Malformed input

@Suite("Malformed input")
struct MalformedInputTests {
    /// Byte strings that are not valid protobuf for any message.
    static let invalid: [(name: String, bytes: [UInt8])] = [
        ("truncated length-delimited field", bytes("12 22 0A 20 00 01 02 03 04")),
        ("length past end of buffer", bytes("0A 7F 00")),
        ("wire type 7", bytes("0F")),
        ("wire type 6", bytes("0E 00")),
        ("field number 0", bytes("00 01")),
        ("varint longer than 10 bytes", bytes("08 FF FF FF FF FF FF FF FF FF FF 01")),
        ("varint cut off", bytes("08 FF")),
        ("all 0xFF", repeating(0xFF, 16)),
    ]

    @Test("Garbage fails to parse with a BinaryDecodingError", arguments: invalid.indices)
    func garbageThrows(index: Int) {
        let (name, input) = Self.invalid[index]
        #expect(throws: BinaryDecodingError.self, "\(name)") {
            try Wa_HandshakeMessage(serializedBytes: input)
        }
        #expect(throws: BinaryDecodingError.self, "\(name)") {
            try Wa_ClientPayload(serializedBytes: input)
        }
        #expect(throws: BinaryDecodingError.self, "\(name)") {
            try Wa_CertChain.NoiseCertificate.Details(serializedBytes: input)
        }
        #expect(throws: BinaryDecodingError.self, "\(name)") {
            try Wa_ADVSignedDeviceIdentityHMAC(serializedBytes: input)
        }
        #expect(throws: BinaryDecodingError.self, "\(name)") {
            try Wa_DeviceProps(serializedBytes: input)
        }
    }

    @Test("Invalid UTF-8 in a string field is rejected")
    func invalidUTF8() {
        // ClientPayload.pushName (field 7, LEN) holding the lone byte 0xFF.
        #expect(throws: BinaryDecodingError.invalidUTF8) {
            try Wa_ClientPayload(serializedBytes: bytes("3A 01 FF"))
        }
    }

    @Test("Random bytes either parse or throw, and never crash")
    func randomBytes() throws {
        var rng = SeededGenerator(seed: 0x5741_0603)
        var failures = 0
        for _ in 0..<2_000 {
            let length = Int.random(in: 0...96, using: &rng)
            let input = (0..<length).map { _ in UInt8.random(in: .min ... .max, using: &rng) }
            do {
                let message = try Wa_ClientPayload(serializedBytes: input)
                // Whatever parsed must serialize and parse back to the same value.
                let again = try Wa_ClientPayload(serializedBytes: try message.serializedBytes() as [UInt8])
                #expect(again == message)
            } catch is BinaryDecodingError {
                failures += 1
            }
            for parse in [
                { _ = try Wa_HandshakeMessage(serializedBytes: input) },
                { _ = try Wa_CertChain(serializedBytes: input) },
                { _ = try Wa_ADVSignedDeviceIdentityHMAC(serializedBytes: input) },
            ] as [() throws -> Void] {
                do { try parse() } catch is BinaryDecodingError {}
            }
        }
        // Random bytes are almost never valid protobuf.
        #expect(failures > 1_500)
    }
}
