import Foundation
import WABinary
import WhatsApp
import WhatsAppServerSide

/// Messaging between simulated peers and hosted accounts: peers send (queued until the account's device acks, as
/// WhatsApp's offline queue does), receive what accounts send them, answer retry receipts and device-list queries.
extension WhatsAppSimulator {
    /// A message waiting for the account device's ack.
    struct QueuedMessage {
        var id: String
        var peer: String
        var text: String
        var group: JID?
        var node: Node
    }

    /// Every number of 11 or more digits that starts with 1555 is a WhatsApp user in the simulator (a peer made on first use).
    static func isPeerNumber(_ user: String) -> Bool {
        user.count >= 11 && user.hasPrefix("1555") && user.allSatisfy(\.isNumber)
    }

    /// The peer with this number, made on first use; nil for numbers the simulator treats as not on WhatsApp or accounts.
    func peer(_ user: String) -> SimulatedPeer? {
        if let peer = peers[user] { return peer }
        guard Self.isPeerNumber(user), account(ofUser: user) == nil, let peer = try? SimulatedPeer(user: user) else { return nil }
        peers[user] = peer
        return peer
    }

    /// Peer `from` sends `text` to hosted account `to` (1:1, or in `group`); returns the message id. Delivered now when
    /// the account is connected, else when it next logs in.
    /// With `viaLID`, the stanza names the peer by its LID (`9` and its number, `@lid`), with `sender_pn` only when
    /// `namingPhoneNumber`, as WhatsApp does for chats it addresses by LID.
    public func sendText(
        from peerUser: String, to accountUser: String, text: String, group: String? = nil, viaLID: Bool = false, namingPhoneNumber: Bool = true
    ) throws -> String {
        guard var sender = peer(peerUser) else { throw SimulatorError("\(peerUser) is not a simulated peer number") }
        guard let account = account(ofUser: accountUser) else { throw SimulatorError("no account \(accountUser)") }
        let groupJID = try group.map { try JID(parsing: $0) }
        var generator = SystemRandomNumberGenerator()
        let id = MessageStanzas.newMessageID(using: &generator)
        var node = try messageNode(id: id, text: text, from: &sender, to: account.jid, group: groupJID)
        if viaLID, groupJID == nil {
            node.attributes = Attributes(node.attributes.map { $0.key == "from" ? Attribute(key: "from", value: .jid(.lid("9" + peerUser))) : $0 })
            if namingPhoneNumber { node.attributes.append(Attribute(key: "sender_pn", value: .jid(sender.jid))) }
        }
        peers[peerUser] = sender
        offlineQueue[accountUser, default: []].append(QueuedMessage(id: id, peer: peerUser, text: text, group: groupJID, node: node))
        counters.messagesSent += 1
        inject(node, toAccount: accountUser)
        return id
    }

    /// While set, acks from the account's devices are ignored: its messages stay queued and come again at its next
    /// login (a device that stored a message and died before its ack reached the server).
    public func setIgnoringAcks(_ ignoring: Bool, account user: String) {
        if ignoring { ignoringAcks.insert(user) } else { ignoringAcks.remove(user) }
    }

    /// Peer `user` loses its session with the account's device (a reinstalled phone, say): the account's next message
    /// to it cannot be read, and the peer sends a retry receipt.
    public func forgetSession(ofPeer user: String, withAccount accountUser: String) {
        guard let device = account(ofUser: accountUser)?.jid else { return }
        peers[user]?.records.sessions[device.signalAddress] = nil
    }

    /// Sends a stanza as it is to every live connection of the account (its messages, and hostile input in tests).
    public func inject(_ node: Node, toAccount user: String) {
        for connectionID in liveConnectionIDs(of: user) { send(node, to: connectionID) }
    }

    /// Tells the account's connections that `user`'s devices changed (a `devices` notification).
    public func notifyDevicesChanged(of user: String, toAccount account: String) {
        var generator = SystemRandomNumberGenerator()
        inject(
            Node(
                tag: "notification",
                attributes: ["id": .string(MessageStanzas.newMessageID(using: &generator)), "from": .jid(.phoneNumber(user)), "type": "devices"]),
            toAccount: account)
    }

    /// The ids of the messages to the account that its device has not acked yet, oldest first.
    public func queuedMessageIDs(ofAccount user: String) -> [String] { offlineQueue[user]?.map(\.id) ?? [] }

    /// What peer `user` received, oldest first.
    public func received(byPeer user: String) -> [PeerMessage] { peers[user]?.inbox ?? [] }

    /// Sends every message still queued for the account to the connection that just logged in.
    func deliverQueued(to user: String, on connectionID: UInt64) {
        for message in offlineQueue[user] ?? [] { send(message.node, to: connectionID) }
    }

    /// The stanza a peer's message reaches the account's device in: `pkmsg`/`msg`, or for a group the peer's sender
    /// key (when the device lacks it) and one `skmsg`.
    func messageNode(id: String, text: String, from sender: inout SimulatedPeer, to device: JID, group: JID?) throws -> Node {
        let bundle = sender.records.sessions[device.signalAddress] == nil ? takeBundle(of: device) : nil
        var attributes: Attributes = ["id": .string(id), "type": "text", "t": .string(String(Int(Date().timeIntervalSince1970)))]
        var payloads: [EncryptedPayload] = []
        if let group {
            attributes.append(Attribute(key: "from", value: .jid(group)))
            attributes.append(Attribute(key: "participant", value: .jid(sender.jid)))
            if sender.senderKeyHolders[group.description]?.contains(device) != true {
                payloads.append(try sender.encrypt("", for: device, bundle: bundle, senderKeyOf: group))
                sender.senderKeyHolders[group.description, default: []].insert(device)
            }
            payloads.append(try sender.groupEncrypt(text, in: group))
        } else {
            attributes.append(Attribute(key: "from", value: .jid(sender.jid)))
            payloads.append(try sender.encrypt(text, for: device, bundle: bundle))
        }
        attributes.append(Attribute(key: "notify", value: .string("Peer \(sender.jid.user)")))
        return Node(
            tag: "message", attributes: attributes,
            children: payloads.map { Node(tag: "enc", attributes: ["v": "2", "type": .string($0.kind.rawValue)], bytes: $0.bytes) })
    }

    /// An account device's bundle from its upload, with one unused one-time prekey (handed out once).
    private func takeBundle(of device: JID) -> SignalPreKeyBundle? {
        guard let upload = uploadedKeys[device.user]?.upload else { return nil }
        let preKey = takeUnusedPreKey(of: device.user)
        return SignalPreKeyBundle(
            registrationID: upload.registrationID, deviceID: UInt32(device.device), identityKey: upload.identityPublicKey,
            signedPreKeyID: upload.signedPreKey.id, signedPreKey: upload.signedPreKey.publicKey, signedPreKeySignature: upload.signedPreKey.signature,
            preKey: preKey)
    }

    // MARK: Stanzas from accounts

    /// An account acked a message: it is stored and leaves the queue.
    func accountAcked(_ node: Node, from connectionID: UInt64) {
        guard node.attributes["class"]?.string == "message", let id = node.attributes["id"]?.string,
            case .loggedIn(let user)? = connections[connectionID]?.phase
        else { return }
        counters.messageAcksReceived += 1
        guard !ignoringAcks.contains(user) else { return }
        let before = offlineQueue[user]?.count ?? 0
        offlineQueue[user]?.removeAll { $0.id == id }
        if (offlineQueue[user]?.count ?? 0) < before {
            counters.messagesAcked += 1
            loadAcked(id)
        }
    }

    /// A receipt from an account: delivery receipts are counted; a retry makes the peer start a fresh session and send again.
    func accountReceipt(_ node: Node, from connectionID: UInt64) {
        guard let id = node.attributes["id"]?.string, case .loggedIn(let user)? = connections[connectionID]?.phase else { return }
        let type = node.attributes["type"]?.string ?? "delivery"
        counters.receipts[type, default: 0] += 1
        guard type == "retry", let index = offlineQueue[user]?.firstIndex(where: { $0.id == id }),
            let queued = offlineQueue[user]?[index], var sender = peers[queued.peer],
            let device = account(ofUser: user)?.jid
        else { return }
        sender.records.sessions[device.signalAddress] = nil
        if let group = queued.group { sender.senderKeyHolders[group.description]?.remove(device) }
        guard let node = try? messageNode(id: id, text: queued.text, from: &sender, to: device, group: queued.group) else { return }
        peers[queued.peer] = sender
        offlineQueue[user]?[index].node = node
        send(node, to: connectionID)
    }

    /// A message from an account: each peer device named reads its payload (a group's members also the `skmsg`);
    /// the server acks it to the sender.
    func accountMessage(_ node: Node, from connectionID: UInt64) {
        guard let id = node.attributes["id"]?.string, let to = node.attributes["to"]?.jid,
            case .loggedIn(let user)? = connections[connectionID]?.phase,
            let device = account(ofUser: user)?.jid
        else { return }
        var perDevice: [JID: Node] = [:]
        for target in node.child("participants")?.children("to") ?? [] {
            if let jid = target.attributes["jid"]?.jid, let enc = target.child("enc") { perDevice[jid] = enc }
        }
        let groupPayload = node.child("enc")
        // A group goes to its members; otherwise, as the server does, to every device the stanza lists.
        let members =
            to.isGroup
            ? (Self.groupFixture.first { $0.id == to.description }?.participants ?? []).compactMap { try? JID(parsing: $0) }
            : Array(Set(perDevice.keys.map(\.withoutDevice) + [to]))
        for member in members where member.user != user {
            guard var recipient = peer(member.user) else { continue }
            let encs = [perDevice[member.withoutDevice], groupPayload].compactMap { $0 }
            guard !encs.isEmpty else { continue }
            var attributes: Attributes = ["id": .string(id)]
            if to.isGroup {
                attributes.append(Attribute(key: "from", value: .jid(to)))
                attributes.append(Attribute(key: "participant", value: .jid(device)))
            } else {
                attributes.append(Attribute(key: "from", value: .jid(device)))
            }
            var receipt: Attributes = ["id": .string(id), "from": .jid(to.isGroup ? to : recipient.jid), "t": .string(String(Int(Date().timeIntervalSince1970)))]
            if to.isGroup { receipt.append(Attribute(key: "participant", value: .jid(recipient.jid))) }
            let reading = DeferredReading(
                peer: member.user, account: user, message: Node(tag: "message", attributes: attributes, children: encs), receipt: receipt)
            if deferredReadings != nil { deferredReadings?.append(reading) } else { read(reading, by: &recipient, answering: [connectionID]) }
            peers[member.user] = recipient
        }
        send(
            Node(tag: "ack", attributes: ["class": "message", "id": .string(id), "from": .jid(to), "t": .string(String(Int(Date().timeIntervalSince1970)))]),
            to: connectionID)
    }

    /// A peer reads a message from an account and answers on `connections` with a delivery receipt, or a retry receipt
    /// (as a phone does) when it cannot decrypt it.
    @discardableResult
    func read(_ reading: DeferredReading, by recipient: inout SimulatedPeer, answering connections: [UInt64]) -> ReadingOutcome {
        var receipt = reading.receipt
        do {
            try recipient.receive(reading.message, kinds: reading.message.children.compactMap { $0.attributes["type"]?.string })
            counters.messagesReceivedByPeers += 1
            for connection in connections { send(Node(tag: "receipt", attributes: receipt), to: connection) }
            return connections.isEmpty ? .unanswered : .read
        } catch {
            counters.undecryptableByPeers += 1
            receipt.append(Attribute(key: "type", value: "retry"))
            let retry = Node(
                tag: "receipt", attributes: receipt,
                children: [Node(tag: "retry", attributes: ["count": "1", "id": reading.receipt["id"] ?? "", "v": "1"]), KeyNodes.registration(recipient.registrationID)])
            for connection in connections { send(retry, to: connection) }
            return .unreadable
        }
    }

    /// The answer to a device-list query: a peer has its phone (device 0), an account its companion; anyone else has
    /// no devices (not on WhatsApp).
    func deviceLists(_ iqID: String, for query: Node) -> Node {
        counters.deviceListQueries += 1
        var users: [Node] = []
        for user in query.child("usync")?.child("list")?.children("user") ?? [] {
            guard let jid = user.attributes["jid"]?.jid else { continue }
            var devices: [UInt16] = []
            if let account = account(ofUser: jid.user) {
                devices = [account.jid.device]
            } else if peer(jid.user) != nil {
                devices = [0]
            }
            let list = Node(tag: "device-list", children: devices.map { Node(tag: "device", attributes: ["id": .string(String($0))]) })
            users.append(Node(tag: "user", attributes: ["jid": .jid(jid.withoutDevice)], children: [Node(tag: "devices", children: [list])]))
        }
        return Node(
            tag: "iq", attributes: ["from": .jid(.whatsappServer), "id": .string(iqID), "type": "result"],
            children: [Node(tag: "usync", children: [Node(tag: "list", children: users)])])
    }
}
