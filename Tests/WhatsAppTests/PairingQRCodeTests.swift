import Testing
import WABinary
import WhatsAppServerSide

@testable import WhatsApp

@Suite struct PairingQRCodeTests {
    static let noise = Array(UInt8(0)..<32)
    static let identity = Array(UInt8(32)..<64)
    static let adv = [UInt8](repeating: 0xFF, count: 32)

    @Test func qrTextMatchesTheCurrentFormat() {
        let qr = PairingQRCode(ref: "2@abc/DEF+g==", noisePublicKey: Self.noise, identityPublicKey: Self.identity, advSecretKey: Self.adv, platformID: .chrome)
        #expect(
            qr.text
                == "https://wa.me/settings/linked_devices#2@abc/DEF+g==,AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=,"
                + "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=,//////////////////////////////////////////8=,1")
    }

    @Test func qrFromCredentialsUsesTheirKeys() throws {
        let credentials = try DeviceCredentials.generate()
        let qr = PairingQRCode(ref: "ref", credentials: credentials, platformID: .otherWebClient)
        let parsed = try PairingQRCode(parsing: qr.text)
        #expect(parsed == qr)
        #expect(parsed.noisePublicKey == credentials.noiseKey.publicKey)
        #expect(parsed.identityPublicKey == credentials.identityKey.publicKey)
        #expect(parsed.advSecretKey == credentials.advSecretKey)
        #expect(parsed.platformID == "9")
    }

    @Test func qrParsingKeepsARefContainingCommas() throws {
        let qr = PairingQRCode(ref: "odd,ref,text", noisePublicKey: Self.noise, identityPublicKey: Self.identity, advSecretKey: Self.adv, platformID: .macOS)
        #expect(try PairingQRCode(parsing: qr.text) == qr)
    }

    @Test(arguments: [
        "2@x,AAAA,BBBB,CCCC,1",
        "https://wa.me/settings/linked_devices#ref,AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=,1",
        "https://wa.me/settings/linked_devices#ref,AAEC,AAEC,AAEC,1",
        "https://wa.me/settings/linked_devices#,AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=,AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=,AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=,1",
    ])
    func malformedQRTextIsRejected(text: String) {
        let error = #expect(throws: PairingError.self) { try PairingQRCode(parsing: text) }
        #expect(error?.reason == .malformedQRCode)
    }

    @Test func qrDescriptionHidesRefAndKeys() {
        let qr = PairingQRCode(ref: "2@secretref", noisePublicKey: Self.noise, identityPublicKey: Self.identity, advSecretKey: Self.adv, platformID: .chrome)
        #expect(!"\(qr)".contains("secretref"))
        #expect(!"\(qr)".contains("//////"))
        #expect(!String(reflecting: qr).contains("secretref"))
    }

    // MARK: Schedule

    static let refs = (1...6).map { "ref\($0)" }

    @Test func firstRefLastsSixtySecondsThenTwentyEach() {
        let schedule = QRRefSchedule(refs: Self.refs)
        #expect(schedule.totalLifetime == .seconds(160))
        #expect(schedule.slot(at: .zero) == .show(index: 0, ref: "ref1", remaining: .seconds(60)))
        #expect(schedule.slot(at: .seconds(59)) == .show(index: 0, ref: "ref1", remaining: .seconds(1)))
        #expect(schedule.slot(at: .seconds(60)) == .show(index: 1, ref: "ref2", remaining: .seconds(20)))
        #expect(schedule.slot(at: .seconds(79)) == .show(index: 1, ref: "ref2", remaining: .seconds(1)))
        #expect(schedule.slot(at: .seconds(80)) == .show(index: 2, ref: "ref3", remaining: .seconds(20)))
        #expect(schedule.slot(at: .milliseconds(145_500)) == .show(index: 5, ref: "ref6", remaining: .milliseconds(14_500)))
        #expect(schedule.slot(at: .seconds(160)) == .exhausted)
        #expect(schedule.slot(at: .seconds(10_000)) == .exhausted)
        #expect(schedule.slot(at: .seconds(-5)) == .show(index: 0, ref: "ref1", remaining: .seconds(60)))
    }

    @Test func refStartTimes() {
        let schedule = QRRefSchedule(refs: Self.refs)
        #expect((0..<6).map { schedule.start(ofRefAt: $0) } == [.zero, .seconds(60), .seconds(80), .seconds(100), .seconds(120), .seconds(140)])
        #expect(schedule.start(ofRefAt: 6) == nil)
        #expect(schedule.start(ofRefAt: -1) == nil)
    }

    @Test func emptyAndDegenerateSchedules() {
        #expect(QRRefSchedule(refs: []).slot(at: .zero) == .exhausted)
        #expect(QRRefSchedule(refs: []).totalLifetime == .zero)
        let single = QRRefSchedule(refs: ["only"])
        #expect(single.totalLifetime == .seconds(60))
        #expect(single.slot(at: .seconds(30)) == .show(index: 0, ref: "only", remaining: .seconds(30)))
        #expect(single.slot(at: .seconds(60)) == .exhausted)
        let zero = QRRefSchedule(refs: Self.refs, firstRefLifetime: .zero, laterRefLifetime: .zero)
        #expect(zero.slot(at: .zero) == .exhausted)
        let negative = QRRefSchedule(refs: Self.refs, firstRefLifetime: .seconds(-1), laterRefLifetime: .seconds(-1))
        #expect(negative.slot(at: .zero) == .exhausted)
    }

    // MARK: pair-device

    static func pairDeviceNode(children: [Node], from: AttributeValue? = .jid(.whatsappServer)) -> Node {
        var attributes: Attributes = ["type": "set", "id": "pd-1", "xmlns": "md"]
        if let from { attributes["from"] = from }
        return Node(tag: "iq", attributes: attributes, children: [Node(tag: "pair-device", children: children)])
    }

    @Test func pairDeviceRefsAreParsedVerbatim() throws {
        let refs = ["2@AbC,+/=", "no-prefix", "x", String(repeating: "r", count: 300), "5@é", "6@z"]
        let node = try PairingTestSupport.overTheWire(PairDeviceRequest(iqID: "pd-1", refs: refs).node)
        let request = try PairDeviceRequest(parsing: node)
        #expect(request.iqID == "pd-1")
        #expect(request.refs == refs)
    }

    @Test func pairDeviceAcceptsStringContentAndIgnoresOtherChildren() throws {
        let node = Self.pairDeviceNode(children: [Node(tag: "ref", content: .string("1@a")), Node(tag: "other"), Node(tag: "ref", bytes: Array("2@b".utf8))])
        #expect(try PairDeviceRequest(parsing: node).refs == ["1@a", "2@b"])
    }

    @Test func acknowledgementIsAnEmptyResultToTheServer() throws {
        let request = try PairDeviceRequest(parsing: Self.pairDeviceNode(children: [Node(tag: "ref", bytes: Array("r".utf8))]))
        let ack = request.acknowledgement
        #expect(ack == Node(tag: "iq", attributes: ["to": .jid(.whatsappServer), "id": "pd-1", "type": "result"]))
        #expect(ack.content == .none)
        #expect(ack.attributes["xmlns"] == nil)
        let bytes = try NodeEncoder().encode(ack)
        #expect(try NodeDecoder().decode(bytes) == ack)
    }

    @Test func pairDeviceFailures() {
        func reason(_ node: Node) -> PairingError.Reason? {
            (#expect(throws: PairingError.self) { try PairDeviceRequest(parsing: node) })?.reason
        }
        #expect(reason(Self.pairDeviceNode(children: [])) == .noRefs)
        #expect(reason(Self.pairDeviceNode(children: [Node(tag: "ref", bytes: [])])) == .malformedRef)
        #expect(reason(Self.pairDeviceNode(children: [Node(tag: "ref", bytes: [0xFF, 0xFE])])) == .malformedRef)
        #expect(reason(Self.pairDeviceNode(children: [Node(tag: "ref")])) == .malformedRef)
        #expect(reason(Self.pairDeviceNode(children: [Node(tag: "ref", bytes: [0x41])], from: .jid(.phoneNumber("123")))) == .unexpectedNode)
        #expect(reason(Node(tag: "iq", attributes: ["type": "set", "id": "x"], children: [Node(tag: "other")])) == .missingChild)
        #expect(reason(Node(tag: "iq", attributes: ["type": "result", "id": "x"])) == .unexpectedNode)
        #expect(reason(Node(tag: "iq", attributes: ["type": "set"], children: [Node(tag: "pair-device")])) == .missingAttribute)
    }

    @Test func pairDeviceWithoutFromIsAccepted() throws {
        let node = Self.pairDeviceNode(children: [Node(tag: "ref", bytes: Array("r".utf8))], from: nil)
        #expect(try PairDeviceRequest(parsing: node).refs == ["r"])
    }
}
