import Foundation
import Testing

@testable import WhatsApp

/// A party with fresh Signal keys: identity, registration id, signed prekey and a few one-time prekeys.
struct SignalParty {
    let address: SignalAddress
    let signal: SignalProtocol

    init(_ name: String, device: UInt32 = 0, preKeys: Int = 3) throws {
        let identity = Curve25519KeyPair.generate()
        let signed = try SignedPreKey.generate(id: 1, identityKey: identity)
        var oneTime: [UInt32: Curve25519KeyPair] = [:]
        for id in 1...UInt32(max(preKeys, 1)) where preKeys > 0 { oneTime[id] = .generate() }
        address = SignalAddress(name: name, deviceID: device)
        signal = try SignalProtocol(
            records: SignalRecords(identity: identity, registrationID: UInt32.random(in: 1...16380), signedPreKey: signed, preKeys: oneTime))
    }

    /// What the server would hand out for this device, with one-time prekey `preKeyID` (or none).
    func bundle(preKeyID: UInt32?) -> SignalPreKeyBundle {
        let records = signal.records
        return SignalPreKeyBundle(
            registrationID: records.registrationID, deviceID: address.deviceID, identityKey: records.identity.publicKey,
            signedPreKeyID: records.signedPreKey.id, signedPreKey: records.signedPreKey.keyPair.publicKey,
            signedPreKeySignature: records.signedPreKey.signature,
            preKey: preKeyID.flatMap { id in records.preKeys[id].map { (id, $0.publicKey) } })
    }
}

@Suite struct SignalProtocolTests {
    @Test func aSessionFromABundleThenRatchetStepsBothWays() throws {
        let alice = try SignalParty("15550000001")
        let bob = try SignalParty("15550000002")
        try alice.signal.startSession(with: bob.address, bundle: bob.bundle(preKeyID: 2))
        #expect(alice.signal.records.changed.contains(.session(bob.address)))

        let first = try alice.signal.encrypt(Array("hello bob".utf8), for: bob.address)
        #expect(first.kind == .preKeyMessage)
        #expect(try bob.signal.decrypt(first, from: alice.address) == Array("hello bob".utf8))
        #expect(bob.signal.records.preKeys[2] == nil, "the one-time prekey is used up")
        #expect(bob.signal.records.changed.contains(.preKey(2)))
        #expect(bob.signal.records.identities[alice.address] == [0x05] + alice.signal.records.identity.publicKey)

        // Until Bob answers, Alice keeps sending prekey messages; after his answer, plain messages.
        #expect(try alice.signal.encrypt(Array("still there?".utf8), for: bob.address).kind == .preKeyMessage)
        for round in 0..<4 {
            let reply = try bob.signal.encrypt(Array("bob \(round)".utf8), for: alice.address)
            #expect(reply.kind == .message)
            #expect(try alice.signal.decrypt(reply, from: bob.address) == Array("bob \(round)".utf8))
            let next = try alice.signal.encrypt(Array("alice \(round)".utf8), for: bob.address)
            #expect(next.kind == .message)
            #expect(try bob.signal.decrypt(next, from: alice.address) == Array("alice \(round)".utf8))
        }
    }

    @Test func aRedeliveredMessageIsADuplicateAndGarbageIsRefused() throws {
        let alice = try SignalParty("a")
        let bob = try SignalParty("b")
        try alice.signal.startSession(with: bob.address, bundle: bob.bundle(preKeyID: 1))
        let message = try alice.signal.encrypt([1, 2, 3], for: bob.address)
        _ = try bob.signal.decrypt(message, from: alice.address)
        #expect(throws: SignalError.self) { try bob.signal.decrypt(message, from: alice.address) }
        let reply = try bob.signal.encrypt([4], for: alice.address)
        _ = try alice.signal.decrypt(reply, from: bob.address)
        do {
            _ = try alice.signal.decrypt(reply, from: bob.address)
            Issue.record("a replayed msg decrypted")
        } catch { #expect(error.isDuplicate) }
        for garbage: [UInt8] in [[], [0x33], Array(repeating: 0xFF, count: 64), reply.bytes.dropLast(3) + [0, 0, 0]] {
            #expect(throws: SignalError.self) { try alice.signal.decrypt(SignalCiphertext(kind: .message, bytes: garbage), from: bob.address) }
            #expect(throws: SignalError.self) {
                try alice.signal.decrypt(SignalCiphertext(kind: .preKeyMessage, bytes: garbage), from: bob.address)
            }
            #expect(throws: SignalError.self) { try alice.signal.groupDecrypt(garbage, from: SenderKeyName(groupID: "g", sender: bob.address)) }
        }
        do {
            _ = try alice.signal.decrypt(message, from: SignalAddress(name: "nobody", deviceID: 3))
            Issue.record("a msg from a device without a session decrypted")
        } catch { #expect(error.isNoSession || error.code == -1005) }
    }

    @Test func aStoredSessionSurvivesAReloadOfTheRecords() throws {
        let alice = try SignalParty("a")
        let bob = try SignalParty("b")
        try alice.signal.startSession(with: bob.address, bundle: bob.bundle(preKeyID: nil))
        _ = try bob.signal.decrypt(try alice.signal.encrypt([1], for: bob.address), from: alice.address)
        _ = try alice.signal.decrypt(try bob.signal.encrypt([2], for: alice.address), from: bob.address)
        // A restart: the records as stored, in a new libsignal store.
        let restarted = try SignalProtocol(records: alice.signal.records)
        let message = try restarted.encrypt([3], for: bob.address)
        #expect(message.kind == .message, "the stored session is used, no new prekey message")
        #expect(try bob.signal.decrypt(message, from: alice.address) == [3])
    }

    @Test func groupMessagesWithSenderKeys() throws {
        let alice = try SignalParty("a")
        let bob = try SignalParty("b")
        let carol = try SignalParty("c", device: 2)
        let name = SenderKeyName(groupID: "120363000000000001@g.us", sender: alice.address)
        let distribution = try alice.signal.senderKeyDistribution(for: name)
        #expect(try alice.signal.senderKeyDistribution(for: name) == distribution, "created once, then the same until the first send")
        for member in [bob, carol] { try member.signal.processSenderKeyDistribution(distribution, for: name) }
        for index in 0..<3 {
            let text = Array("to the group \(index)".utf8)
            let ciphertext = try alice.signal.groupEncrypt(text, as: name)
            #expect(try bob.signal.groupDecrypt(ciphertext, from: name) == text)
            #expect(try carol.signal.groupDecrypt(ciphertext, from: name) == text)
        }
        let other = SenderKeyName(groupID: "120363000000000002@g.us", sender: alice.address)
        #expect(throws: SignalError.self) { try bob.signal.groupDecrypt(try alice.signal.groupEncrypt([1], as: other), from: other) }
    }
}
