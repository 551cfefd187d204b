import Foundation
import WABinary
import WhatsApp

/// A WhatsApp user outside wahost (one phone, device 0) with its own Signal identity and prekeys: it messages
/// hosted accounts and reads what they send it, so every messaging test has a second party.
struct SimulatedPeer {
    let jid: JID
    let registrationID: UInt32
    let identity: Curve25519KeyPair
    let signedPreKey: SignedPreKey
    /// Its one-time prekeys not handed out yet (public halves go into bundles).
    var unusedPreKeys: [PreKey]
    /// Its Signal state (private prekeys included) as libsignal leaves it after each operation.
    var records: SignalRecords
    /// Accounts' devices that already have this peer's sender key, per group.
    var senderKeyHolders: [String: Set<JID>] = [:]
    /// What it received, oldest first.
    var inbox: [PeerMessage] = []

    init(user: String) throws {
        let keys = try DeviceCredentials.generate()
        let preKeys = PreKey.generate(count: 20, firstID: 1)
        jid = .phoneNumber(user)
        registrationID = keys.registrationID
        identity = keys.identityKey
        signedPreKey = keys.signedPreKey
        unusedPreKeys = preKeys
        records = SignalRecords(
            identity: keys.identityKey, registrationID: keys.registrationID, signedPreKey: keys.signedPreKey,
            preKeys: Dictionary(uniqueKeysWithValues: preKeys.map { ($0.id, $0.keyPair) }))
    }

    /// The `<user>` answer of a prekey bundle request for this peer; hands out one one-time prekey.
    mutating func bundleNode() -> Node {
        var children = [
            KeyNodes.registration(registrationID), Node(tag: "identity", bytes: identity.publicKey),
            KeyNodes.signedKey(id: signedPreKey.id, publicKey: signedPreKey.keyPair.publicKey, signature: signedPreKey.signature),
        ]
        if !unusedPreKeys.isEmpty {
            let preKey = unusedPreKeys.removeFirst()
            children.append(KeyNodes.key(id: preKey.id, publicKey: preKey.keyPair.publicKey))
        }
        return Node(tag: "user", attributes: ["jid": .jid(jid)], children: children)
    }

    /// Reads a message stanza addressed to it (as the server hands it over) and keeps what it says.
    mutating func receive(_ node: Node, kinds: [String]) throws {
        let message = try IncomingMessage(parsing: node)
        let signal = try SignalProtocol(records: records)
        defer { records = signal.records }
        let content = try InboundDecryption.decrypt(message, with: signal)
        inbox.append(
            PeerMessage(id: message.id, chat: message.chat.description, from: message.sender.description, text: content.text, kinds: kinds))
    }

    /// Encrypts a text for one device of an account (a session from `bundle` when there is none yet).
    mutating func encrypt(
        _ text: String, for device: JID, bundle: SignalPreKeyBundle?, senderKeyOf group: JID? = nil
    ) throws -> EncryptedPayload {
        let signal = try SignalProtocol(records: records)
        defer { records = signal.records }
        let address = device.signalAddress
        if !signal.hasSession(with: address) {
            guard let bundle else { throw SimulatorError("no session with \(device) and no prekey bundle") }
            try signal.startSession(with: address, bundle: bundle)
        }
        var generator = SystemRandomNumberGenerator()
        let plaintext: [UInt8]
        if let group {
            let distribution = try signal.senderKeyDistribution(for: SenderKeyName(groupID: group.description, sender: jid.signalAddress))
            plaintext = MessagePlaintext.encodeSenderKeyDistribution(groupID: group.description, distribution: distribution)
        } else {
            plaintext = MessagePlaintext.encodeText(text)
        }
        let ciphertext = try signal.encrypt(MessagePadding.pad(plaintext, using: &generator), for: address)
        return EncryptedPayload(kind: ciphertext.kind == .preKeyMessage ? .preKeyMessage : .message, bytes: ciphertext.bytes)
    }

    /// A group text under this peer's sender key (`skmsg`).
    mutating func groupEncrypt(_ text: String, in group: JID) throws -> EncryptedPayload {
        let signal = try SignalProtocol(records: records)
        defer { records = signal.records }
        var generator = SystemRandomNumberGenerator()
        let name = SenderKeyName(groupID: group.description, sender: jid.signalAddress)
        let bytes = try signal.groupEncrypt(MessagePadding.pad(MessagePlaintext.encodeText(text), using: &generator), as: name)
        return EncryptedPayload(kind: .senderKeyMessage, bytes: bytes)
    }
}

/// A message a simulated peer received.
public struct PeerMessage: Sendable, Equatable, Codable {
    public var id: String
    /// The chat as the peer sees it: the sender's account, or the group.
    public var chat: String
    /// The sending device.
    public var from: String
    public var text: String?
    /// The payload kinds it arrived in (`pkmsg`, `msg`, `skmsg`).
    public var kinds: [String]
}
