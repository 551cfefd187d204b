import Foundation
import Testing
import WABinary
import WhatsAppServerSide

@testable import WhatsApp

/// Sending: bundles fetched, sessions started, one payload per device, read back by each device's own Signal state.
@Suite struct OutboundEncryptionTests {
    let ourDevice = JID.phoneNumber("15550000001", device: 4)
    let ourPhone = JID.phoneNumber("15550000001", device: 0)
    let peerPhone = JID.phoneNumber("15550000002", device: 0)
    let peerLaptop = JID.phoneNumber("15550000002", device: 7)
    let group = JID.group("120363000000000009")

    /// The server's answer to a bundle request for these parties, as bytes on the wire, parsed back.
    func fetchedBundles(_ parties: [(JID, SignalParty)]) throws -> [JID: SignalPreKeyBundle] {
        let request = PreKeyBundleStanzas.request(id: "b1", devices: parties.map(\.0))
        #expect(request.child("key")?.children("user").count == parties.count)
        // Each party's keys go through the upload stanza and come back as the server side answers a bundle request.
        let users = try parties.map { jid, party -> Node in
            let records = party.signal.records
            let upload = Stanzas.preKeyUpload(
                id: "u", registrationID: records.registrationID, identityPublicKey: records.identity.publicKey,
                preKeys: records.preKeys.map { PreKey(id: $0.key, keyPair: $0.value) }.sorted { $0.id < $1.id },
                signedPreKey: records.signedPreKey)
            return try PreKeyUpload(parsing: upload).bundle(for: jid, preKey: (1, records.preKeys[1]!.publicKey))
        }
        let response = Node(tag: "iq", attributes: ["id": "b1", "type": "result"], children: [Node(tag: "list", children: users)])
        let parsed = try PreKeyBundleStanzas.parse(try NodeDecoder().decode(try NodeEncoder().encode(response)))
        for (jid, party) in parties { #expect(parsed[jid] == party.bundle(preKeyID: 1)) }
        return parsed
    }

    func delivered(_ payload: EncryptedPayload, from chat: JID, participant: JID? = nil, extra: [EncryptedPayload] = []) throws -> IncomingMessage {
        var attributes: Attributes = ["from": .jid(chat), "id": "OUT1", "t": "1"]
        if let participant { attributes.append(Attribute(key: "participant", value: .jid(participant))) }
        return try IncomingMessage(
            parsing: Node(
                tag: "message", attributes: attributes,
                children: ([payload] + extra).map { Node(tag: "enc", attributes: ["v": "2", "type": .string($0.kind.rawValue)], bytes: $0.bytes) }))
    }

    @Test func aTextReachesEveryRecipientDeviceAndOurOtherDevicesGetACopy() throws {
        var generator = SystemRandomNumberGenerator()
        let us = try SignalParty(ourDevice.signalAddress.name, device: 4)
        let phone = try SignalParty(ourPhone.signalAddress.name, device: 0)
        let peer0 = try SignalParty(peerPhone.signalAddress.name, device: 0)
        let peer7 = try SignalParty(peerLaptop.signalAddress.name, device: 7)
        let bundles = try fetchedBundles([(peerPhone, peer0), (peerLaptop, peer7), (ourPhone, phone)])
        let payloads = try OutboundEncryption.oneToOne(
            "hello from the API", to: peerPhone.withoutDevice, recipientDevices: [peerPhone, peerLaptop], ownDevices: [ourPhone],
            bundles: bundles, with: us.signal, using: &generator)
        #expect(payloads.map(\.device) == [peerPhone, peerLaptop, ourPhone])
        #expect(payloads.allSatisfy { $0.payload.kind == .preKeyMessage })

        for (device, party) in [(peerPhone, peer0), (peerLaptop, peer7)] {
            let payload = try #require(payloads.first { $0.device == device }?.payload)
            #expect(try InboundDecryption.decrypt(try delivered(payload, from: ourDevice), with: party.signal).text == "hello from the API")
        }
        let copy = try InboundDecryption.decrypt(try delivered(payloads[2].payload, from: ourDevice), with: phone.signal)
        #expect(copy.text == "hello from the API" && copy.sentTo == peerPhone.withoutDevice.description)

        let stanza = MessageStanzas.fanOut(id: "OUT1", to: peerPhone.withoutDevice, payloads: payloads, deviceIdentity: [1, 2, 3])
        #expect(stanza.child("participants")?.children("to").count == 3 && stanza.child("device-identity") != nil)

        // The sessions exist now: no bundle needed for the next message.
        let next = try OutboundEncryption.oneToOne(
            "again", to: peerPhone.withoutDevice, recipientDevices: [peerPhone], ownDevices: [], bundles: [:], with: us.signal, using: &generator)
        #expect(next.count == 1)
        #expect(throws: OutboundEncryptionError.self) {
            try OutboundEncryption.oneToOne(
                "x", to: peerPhone.withoutDevice, recipientDevices: [JID.phoneNumber("15550000003")], ownDevices: [], bundles: [:],
                with: us.signal, using: &generator)
        }
    }

    @Test func aGroupTextIsOneSenderKeyMessageAfterTheKeyIsHandedOut() throws {
        var generator = SystemRandomNumberGenerator()
        let us = try SignalParty(ourDevice.signalAddress.name, device: 4)
        let peer0 = try SignalParty(peerPhone.signalAddress.name, device: 0)
        let peer7 = try SignalParty(peerLaptop.signalAddress.name, device: 7)
        let bundles = try fetchedBundles([(peerPhone, peer0), (peerLaptop, peer7)])
        let first = try OutboundEncryption.group(
            "hello group", to: group, from: ourDevice, needsSenderKey: [peerPhone, peerLaptop], bundles: bundles, with: us.signal, using: &generator)
        #expect(first.keyPayloads.count == 2 && first.groupPayload.kind == .senderKeyMessage)
        for (device, party) in [(peerPhone, peer0), (peerLaptop, peer7)] {
            let keyPayload = try #require(first.keyPayloads.first { $0.device == device }?.payload)
            let message = try delivered(keyPayload, from: group, participant: ourDevice, extra: [first.groupPayload])
            #expect(try InboundDecryption.decrypt(message, with: party.signal).text == "hello group")
        }
        // Everyone has the key: the next text is the skmsg alone, readable by each member.
        let second = try OutboundEncryption.group(
            "second", to: group, from: ourDevice, needsSenderKey: [], bundles: [:], with: us.signal, using: &generator)
        #expect(second.keyPayloads.isEmpty)
        for party in [peer0, peer7] {
            let message = try delivered(second.groupPayload, from: group, participant: ourDevice)
            #expect(try InboundDecryption.decrypt(message, with: party.signal).text == "second")
        }
    }

    @Test func malformedBundleAnswersAreRefused() throws {
        let user = { (children: [Node]) in
            Node(tag: "iq", children: [Node(tag: "list", children: [Node(tag: "user", attributes: ["jid": .jid(self.peerPhone)], children: children)])])
        }
        #expect(throws: StanzaError.self) { try PreKeyBundleStanzas.parse(Node(tag: "iq")) }
        #expect(throws: StanzaError.self) { try PreKeyBundleStanzas.parse(user([Node(tag: "registration", bytes: [1, 2])])) }
        #expect(throws: StanzaError.self) {
            try PreKeyBundleStanzas.parse(user([Node(tag: "registration", bytes: [0, 0, 0, 1]), Node(tag: "identity", bytes: [UInt8](repeating: 1, count: 32))]))
        }
        #expect(try PreKeyBundleStanzas.parse(user([Node(tag: "error", attributes: ["code": "404"])])).isEmpty, "a device the server refuses is left out")
    }
}
