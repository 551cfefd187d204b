import Foundation
import Testing
import WABinary

@testable import WhatsApp

/// A peer's messages, as the server delivers them to us, decrypted the way the client will.
@Suite struct InboundDecryptionTests {
    var generator = SystemRandomNumberGenerator()
    let ourJID = JID.phoneNumber("15550000001", device: 4)
    let peerJID = JID.phoneNumber("15550000002", device: 0)
    let group = JID.group("120363000000000007")

    func parties() throws -> (us: SignalProtocol, peer: SignalProtocol) {
        let us = try SignalParty(ourJID.signalAddress.name, device: UInt32(ourJID.device))
        let peer = try SignalParty(peerJID.signalAddress.name, device: 0)
        try peer.signal.startSession(with: ourJID.signalAddress, bundle: us.bundle(preKeyID: 1))
        return (us.signal, peer.signal)
    }

    func incoming(from chat: JID, participant: JID? = nil, id: String, _ payloads: [EncryptedPayload]) throws -> IncomingMessage {
        var attributes: Attributes = ["from": .jid(chat), "id": .string(id), "t": "1800000000", "notify": "Peer"]
        if let participant { attributes.append(Attribute(key: "participant", value: .jid(participant))) }
        let node = Node(
            tag: "message", attributes: attributes,
            children: payloads.map { Node(tag: "enc", attributes: ["v": "2", "type": .string($0.kind.rawValue)], bytes: $0.bytes) })
        return try IncomingMessage(parsing: try NodeDecoder().decode(try NodeEncoder().encode(node)))
    }

    func oneToOne(_ peer: SignalProtocol, _ text: String) throws -> EncryptedPayload {
        var generator = SystemRandomNumberGenerator()
        let ciphertext = try peer.encrypt(MessagePadding.pad(MessagePlaintext.encodeText(text), using: &generator), for: ourJID.signalAddress)
        return EncryptedPayload(kind: ciphertext.kind == .preKeyMessage ? .preKeyMessage : .message, bytes: ciphertext.bytes)
    }

    @Test mutating func oneToOneTextAndItsRedelivery() throws {
        let (us, peer) = try parties()
        let first = try incoming(from: peerJID, id: "M1", [try oneToOne(peer, "hi from the phone")])
        #expect(try InboundDecryption.decrypt(first, with: us).text == "hi from the phone")
        #expect(us.records.changed.contains(.session(peerJID.signalAddress)))
        do {
            _ = try InboundDecryption.decrypt(first, with: us)
            Issue.record("a redelivered message decrypted twice")
        } catch { #expect(!error.retry, "a duplicate is not worth a retry: \(error)") }
        _ = try peer.decrypt(try us.encrypt(MessagePadding.pad([0x0A, 0x01, 0x41], using: &generator), for: peerJID.signalAddress), from: ourJID.signalAddress)
        let second = try incoming(from: peerJID, id: "M2", [try oneToOne(peer, "second")])
        #expect(second.payloads.first?.kind == .message)
        #expect(try InboundDecryption.decrypt(second, with: us).text == "second")
    }

    @Test func aGroupMessageCarriesTheSenderKeyThenTheText() throws {
        let (us, peer) = try parties()
        let name = SenderKeyName(groupID: group.description, sender: peerJID.signalAddress)
        let distribution = try peer.senderKeyDistribution(for: name)
        var generator = SystemRandomNumberGenerator()
        let keyCarrier = try peer.encrypt(
            MessagePadding.pad(MessagePlaintext.encodeSenderKeyDistribution(groupID: group.description, distribution: distribution), using: &generator),
            for: ourJID.signalAddress)
        let text = try peer.groupEncrypt(MessagePadding.pad(MessagePlaintext.encodeText("hello group"), using: &generator), as: name)
        let message = try incoming(
            from: group, participant: peerJID, id: "G1",
            [EncryptedPayload(kind: .preKeyMessage, bytes: keyCarrier.bytes), EncryptedPayload(kind: .senderKeyMessage, bytes: text)])
        #expect(try InboundDecryption.decrypt(message, with: us).text == "hello group")
        #expect(us.records.senderKeys[name] != nil)
        let later = try peer.groupEncrypt(MessagePadding.pad(MessagePlaintext.encodeText("again"), using: &generator), as: name)
        let next = try incoming(from: group, participant: peerJID, id: "G2", [EncryptedPayload(kind: .senderKeyMessage, bytes: later)])
        #expect(try InboundDecryption.decrypt(next, with: us).text == "again")
    }

    @Test func undecryptableMessagesSayWhetherARetryCanHelp() throws {
        let (us, peer) = try parties()
        let stranger = JID.phoneNumber("15550000003")
        let noSession = try incoming(from: stranger, id: "X1", [EncryptedPayload(kind: .message, bytes: try oneToOne(peer, "x").bytes)])
        do {
            _ = try InboundDecryption.decrypt(noSession, with: us)
            Issue.record("decrypted without a session")
        } catch { #expect(error.retry) }
        let unknownKey = try incoming(from: group, participant: peerJID, id: "X2", [EncryptedPayload(kind: .senderKeyMessage, bytes: [0x33, 1, 2])])
        do {
            _ = try InboundDecryption.decrypt(unknownKey, with: us)
            Issue.record("decrypted without a sender key")
        } catch { #expect(error.retry) }
        let badPadding = try peer.encrypt([0x0A, 0x01, 0x41, 0x00], for: ourJID.signalAddress)
        let unreadable = try incoming(from: peerJID, id: "X3", [EncryptedPayload(kind: .preKeyMessage, bytes: badPadding.bytes)])
        do {
            _ = try InboundDecryption.decrypt(unreadable, with: us)
            Issue.record("read a plaintext with bad padding")
        } catch { #expect(!error.retry) }
    }

    @Test func signalAddressesFollowTheDomain() {
        #expect(JID.phoneNumber("155", device: 3).signalAddress == SignalAddress(name: "155", deviceID: 3))
        #expect(JID.lid("987", device: 2).signalAddress == SignalAddress(name: "987_1", deviceID: 2))
    }
}
