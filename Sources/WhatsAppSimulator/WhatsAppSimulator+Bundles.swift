import WABinary
import WhatsAppServerSide

extension WhatsAppSimulator {
    /// The answer to a prekey bundle request: each known device's bundle with one unused one-time prekey (handed out
    /// once, as WhatsApp does), an `<error code="404">` for devices the server has no keys for.
    func preKeyBundles(_ iqID: String, for users: [Node]) -> Node {
        var answers: [Node] = []
        for user in users {
            guard let jid = user.attributes["jid"]?.jid else { continue }
            if jid.device == 0, var peer = peer(jid.user) {
                answers.append(peer.bundleNode())
                peers[jid.user] = peer
                counters.bundlesServed += 1
                continue
            }
            guard let keys = uploadedKeys[jid.user] else {
                answers.append(Node(tag: "user", attributes: ["jid": .jid(jid)], children: [Node(tag: "error", attributes: ["code": "404", "text": "item-not-found"])]))
                continue
            }
            counters.bundlesServed += 1
            answers.append(keys.upload.bundle(for: jid, preKey: takeUnusedPreKey(of: jid.user)))
        }
        return Node(
            tag: "iq", attributes: ["from": .jid(.whatsappServer), "id": .string(iqID), "type": "result"],
            children: [Node(tag: "list", children: answers)])
    }

    /// One of the account's uploaded one-time prekeys, handed out once; nil when none is left.
    func takeUnusedPreKey(of user: String) -> (id: UInt32, publicKey: [UInt8])? {
        guard uploadedKeys[user]?.unused.isEmpty == false else { return nil }
        counters.preKeys[user] = max(0, (counters.preKeys[user] ?? 0) - 1)
        return uploadedKeys[user]?.unused.removeFirst()
    }
}
