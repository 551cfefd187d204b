import WABinary

/// One connection's stanza handling as a value: a stanza or a timer in, actions out; no socket, store or clock.
///
/// The client actor carries the actions out in order. Once the machine decided the connection ends (a stream error,
/// a failure, the stream's end), every later input yields nothing: a terminal reason wins over whatever the
/// connection was still doing.
struct ConnectionMachine: Sendable {
    /// What the client does next.
    enum Action: Sendable, Equatable {
        /// Encrypt and queue this stanza.
        case send(Node)
        /// The answer to our request `id`.
        case answer(id: String, Node)
        /// A server request the pairing code handles (`pair-device`, `pair-success`, a link-code notification).
        case pairing(Node)
        /// A `<message>`: decrypt, store, then receipt and ack (the client acks only once the message is stored).
        case receiveMessage(Node)
        /// A `<receipt>`: store it (or answer a retry), then ack.
        case receiveReceipt(Node)
        /// An account's device list changed (drop what the send caches know of it).
        case devicesChanged(JID)
        /// A group's members changed (drop the cached member list).
        case groupChanged(JID)
        /// Publish this event.
        case emit(WhatsAppEvent)
        /// Ask how many prekeys the server holds, and upload a batch when it runs low.
        case checkPreKeys
        /// Upload `count` new prekeys.
        case uploadPreKeys(count: Int)
        /// Arm the next keepalive ping.
        case armKeepalive
        /// Wipe the stored credentials (the account is unlinked).
        case wipeCredentials
        /// End the connection for this reason.
        case close(DisconnectReason)
    }

    private(set) var loggedIn = false
    /// Set once the connection's end is decided; nothing after it is acted on.
    private(set) var closing: DisconnectReason?
    /// Ids of our requests still waiting for an answer (the IQ correlation table).
    private(set) var pending: Set<String> = []
    private var ids: IQIDGenerator

    init(ids: IQIDGenerator = IQIDGenerator()) {
        self.ids = ids
    }

    /// A fresh request id, recorded as pending.
    mutating func nextRequestID() -> String {
        let id = ids.next()
        pending.insert(id)
        return id
    }

    /// Records a message id whose server ack is awaited (answered like a request).
    mutating func expectAck(of id: String) {
        pending.insert(id)
    }

    /// A fresh id for a stanza whose answer nobody waits for.
    mutating func nextStanzaID() -> String {
        ids.next()
    }

    /// Forgets a pending request (it failed or timed out).
    mutating func forget(_ id: String) {
        pending.remove(id)
    }

    /// The connection ends from our side (a request to disconnect, a keepalive timeout, a logout).
    mutating func end(_ reason: DisconnectReason) -> [Action] {
        guard closing == nil else { return [] }
        closing = reason
        return [.close(reason)]
    }

    /// One stanza from the server; `account` is the paired account, if any.
    mutating func received(_ node: Node, account: JID?) -> [Action] {
        if let closing { return terminalAfter(closing, node) }
        switch node.tag {
        case "iq":
            let type = node.attributes["type"]?.string
            if type == "result" || type == "error", let id = node.attributes["id"]?.string, pending.remove(id) != nil {
                return [.answer(id: id, node)]
            }
            guard type == "set" || type == "get" else { return [] }
            if node.child("pair-device") != nil || node.child("pair-success") != nil { return [.pairing(node)] }
            // Pings and anything else we do not implement get an empty result so the server never waits on us.
            return Stanzas.iqResult(answering: node).map { [.send($0)] } ?? []
        case "success":
            // A registration connection may see <success> before pair-device; it means nothing there.
            guard let account, !loggedIn else { return [] }
            loggedIn = true
            return [.send(Stanzas.setActive(id: ids.next())), .emit(.loggedIn(jid: account.description)), .checkPreKeys, .armKeepalive]
        case "failure":
            return ended(DisconnectReason.fromFailure(node))
        case "stream:error":
            return ended(DisconnectReason.fromStreamError(node))
        case "xmlstreamend":
            return ended(.connectionClosed)
        case "message":
            return [.receiveMessage(node)]
        case "ack":
            // The server's ack of a message we sent; other acks need nothing.
            guard node.attributes["class"]?.string == "message", let id = node.attributes["id"]?.string, pending.remove(id) != nil else { return [] }
            return [.answer(id: id, node)]
        case "receipt":
            return [.receiveReceipt(node)]
        case "notification", "call":
            var actions: [Action] = []
            if node.tag == "notification", node.attributes["type"]?.string == "encrypt",
                let count = try? Stanzas.parsePreKeyCount(node), count < PreKeyPolicy.minimumOnServer
            {
                actions.append(.uploadPreKeys(count: PreKeyPolicy.refillBatch))
            }
            if node.tag == "notification", node.attributes["type"]?.string == "link_code_companion_reg" { actions.append(.pairing(node)) }
            if node.tag == "notification", let from = node.attributes["from"]?.jid {
                switch node.attributes["type"]?.string {
                case "devices": actions.append(.devicesChanged(from))
                case "w:gp2" where from.isGroup: actions.append(.groupChanged(from))
                default: break
                }
            }
            if let ack = Stanzas.ack(for: node) { actions.append(.send(ack)) }
            return actions
        default:
            return []
        }
    }

    /// After our own end, only a terminal reason from the server still counts, and only over an end that would
    /// reconnect: reconnecting after `replaced` would fight the other companion, after a 401 keep dead credentials.
    private mutating func terminalAfter(_ closing: DisconnectReason, _ node: Node) -> [Action] {
        let reason: DisconnectReason
        switch node.tag {
        case "stream:error": reason = DisconnectReason.fromStreamError(node)
        case "failure": reason = DisconnectReason.fromFailure(node)
        default: return []
        }
        let reconnects = closing.disposition == .reconnectNow || closing.disposition == .reconnectWithBackoff
        let terminal = reason.disposition == .stop || reason.disposition == .stopAndWipeCredentials
        guard reconnects, terminal else { return [] }
        return ended(reason)
    }

    private mutating func ended(_ reason: DisconnectReason) -> [Action] {
        closing = reason
        if reason.disposition == .stopAndWipeCredentials { return [.wipeCredentials, .close(reason)] }
        return [.close(reason)]
    }
}

extension PreKeyPolicy {
    /// How many prekeys to upload when the server holds `count`; nil when it holds enough.
    static func batch(serverHolds count: Int) -> Int? {
        guard count < minimumOnServer else { return nil }
        return count == 0 ? initialBatch : refillBatch
    }
}
