import Testing

@testable import WABinary

@Suite struct JIDTests {
    @Test(arguments: [
        ("1234567890@s.whatsapp.net", "1234567890", UInt8(0), UInt16(0), UInt16(0), JID.Server.phoneNumber),
        ("1234567890:5@s.whatsapp.net", "1234567890", 0, 5, 0, .phoneNumber),
        ("98765432109876:17@lid", "98765432109876", 0, 17, 0, .lid),
        ("98765@lid", "98765", 0, 0, 0, .lid),
        ("120363012345678901@g.us", "120363012345678901", 0, 0, 0, .group),
        ("1234567890-1600000000@g.us", "1234567890-1600000000", 0, 0, 0, .group),
        ("status@broadcast", "status", 0, 0, 0, .broadcast),
        ("120363000000000000@newsletter", "120363000000000000", 0, 0, 0, .newsletter),
        ("867051314767696@bot", "867051314767696", 0, 0, 0, .bot),
        ("1234.5:2@s.whatsapp.net", "1234", 5, 2, 0, .phoneNumber),
        ("1234:99@hosted", "1234", 0, 99, 0, .hosted),
        ("1234:99@hosted.lid", "1234", 0, 99, 0, .hostedLID),
        ("100000:300@msgr", "100000", 0, 300, 0, .messenger),
        ("7-123:4@interop", "123", 0, 4, 7, .interop),
        ("s.whatsapp.net", "", 0, 0, 0, .phoneNumber),
        ("g.us", "", 0, 0, 0, .group),
    ])
    func parsesAndFormats(
        text: String, user: String, agent: UInt8, device: UInt16, integrator: UInt16, server: JID.Server
    ) throws {
        let jid = try JID(parsing: text)
        #expect(jid == JID(user: user, rawAgent: agent, device: device, integrator: integrator, server: server))
        #expect(jid.description == text)
        #expect(try JID(parsing: jid.description) == jid)
    }

    @Test func bareServerForms() throws {
        #expect(try JID(parsing: "@s.whatsapp.net") == .whatsappServer)
        #expect(JID.whatsappServer.description == "s.whatsapp.net")
        #expect(JID.whatsappServer.isServer)
        #expect(try JID(parsing: "1@c.us").server == .legacyUser)
    }

    @Test func dotsOutsidePhoneNumbersStayInTheUser() throws {
        #expect(try JID(parsing: "a.b@newsletter").user == "a.b")
    }

    @Test(arguments: [
        ("", JIDParseError.Reason.empty),
        ("a@b@c", .tooManyAtSigns),
        ("123@", .emptyServer),
        ("1:x@s.whatsapp.net", .invalidDevice),
        ("1:@lid", .invalidDevice),
        ("1:+5@lid", .invalidDevice),
        ("1:256@s.whatsapp.net", .invalidDevice),
        ("1:70000@msgr", .invalidDevice),
        ("1:2:3@lid", .invalidDevice),
        ("1:99999999999999999999@lid", .invalidDevice),
        (":3@s.whatsapp.net", .missingUser),
        (".5:3@s.whatsapp.net", .missingUser),
        ("1.1:2@s.whatsapp.net", .invalidAgent),
        ("1.128:2@s.whatsapp.net", .invalidAgent),
        ("1.256:2@s.whatsapp.net", .invalidAgent),
        ("1.x:2@s.whatsapp.net", .invalidAgent),
        ("x-1:2@interop", .invalidIntegrator),
        ("70000-1:2@interop", .invalidIntegrator),
        ("12x", .unknownBareServer),
        ("1234567890", .unknownBareServer),
    ])
    func rejectsInvalidStrings(text: String, reason: JIDParseError.Reason) {
        #expect {
            _ = try JID(parsing: text)
        } throws: { error in
            (error as? JIDParseError)?.reason == reason && (error as? JIDParseError)?.input == text
        }
    }

    @Test func adAndLIDHelpers() throws {
        let device = JID.phoneNumber("12345678901", device: 17)
        #expect(device.isAD)
        #expect(device.isPhoneNumber)
        #expect(device.withoutDevice == .phoneNumber("12345678901"))
        #expect(!device.withoutDevice.isAD)
        #expect(device.withoutDevice.withDevice(17) == device)
        let lid = JID.lid("98765432109876", device: 17)
        #expect(lid.isLID && lid.isAD && !lid.isPhoneNumber)
        #expect(lid.description == "98765432109876:17@lid")
        #expect(JID.group("1203").isGroup)
        #expect(JID.statusBroadcast.description == "status@broadcast")
        #expect(JID.empty.isEmpty && JID.empty.description == "")
    }

    @Test func wireFormsPerServer() throws {
        // Device 0 is a JID_PAIR even on lid; device > 0 is an AD_JID with domain 0 (PN) or 1 (LID).
        #expect(try encodedJID(.lid("98765")) == hexBytes("FA FF 83 98 76 5F") + encodedString("lid"))
        #expect(try encodedJID(.lid("98765", device: 5))[0...1] == [0xF7, 0x01])
        #expect(try encodedJID(.phoneNumber("1", device: 255))[0...2] == [0xF7, 0x00, 0xFF])
        // Hosted JIDs are always AD_JIDs, even with device 0.
        #expect(try encodedJID(JID(parsing: "1234@hosted"))[0...2] == [0xF7, 0x80, 0x00])
        #expect(try encodedJID(JID(parsing: "1234:99@hosted.lid"))[0...2] == [0xF7, 0x81, 0x63])
        // A nonstandard agent travels as the domain byte.
        #expect(try encodedJID(JID(parsing: "1234.5:2@s.whatsapp.net"))[0...2] == [0xF7, 0x05, 0x02])
        // Messenger and interop.
        #expect(try encodedJID(JID(parsing: "100:300@msgr"))[0] == 0xF6)
        #expect(try encodedJID(JID(parsing: "7-123:4@interop"))[0] == 0xF5)
    }

    @Test func unencodableJIDsAreRefused() {
        let cases: [JID] = [
            .empty,
            JID(user: "1", device: 256, server: .phoneNumber),
            JID(user: "1", device: 1, server: .group),
            JID(user: "1", rawAgent: 1, device: 1, server: .phoneNumber),
            JID(user: "1", rawAgent: 3, server: .lid),
            JID(user: "1", integrator: 3, server: .phoneNumber),
        ]
        for jid in cases {
            #expect(throws: BinaryEncodingError.self) { try encodedJID(jid) }
        }
    }

    @Test func everyWireFormRoundTrips() throws {
        let jids: [JID] = [
            .whatsappServer, .groupServer, .statusBroadcast,
            .phoneNumber("1234567890"), .phoneNumber("1234567890", device: 5),
            .lid("98765"), .lid("98765", device: 99),
            try JID(parsing: "1234:99@hosted"), try JID(parsing: "1234@hosted.lid"),
            try JID(parsing: "1234.7:2@s.whatsapp.net"),
            try JID(parsing: "100:65535@msgr"), try JID(parsing: "65535-abc:1@interop"),
            JID(user: "ünïcödé", server: "example.server"),
        ]
        for jid in jids {
            let node = Node(tag: "x", attributes: ["jid": .jid(jid)], content: .jid(jid))
            let decoded = try NodeDecoder().decode(try NodeEncoder().encode(node))
            #expect(decoded == node, "\(jid)")
        }
    }
}
