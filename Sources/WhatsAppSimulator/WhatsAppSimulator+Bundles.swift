import WABinary
import WhatsAppServerSide

extension WhatsAppSimulator {
    /// The answer to a prekey bundle request: each known device's bundle with one unused one-time prekey (handed out
    /// once, as WhatsApp does), an `<error code="404">` for devices the server has no keys for.
    func preKeyBundles(_ iqID: String, for users: [Node]) -> Node {
        var answers: [Node] = []
        for user in users {
            guard let jid = user.attributes["jid"]?.jid else { continue }
            guard var keys = uploadedKeys[jid.user] else {
                answers.append(Node(tag: "user", attributes: ["jid": .jid(jid)], children: [Node(tag: "error", attributes: ["code": "404", "text": "item-not-found"])]))
                continue
            }
            let preKey = keys.unused.isEmpty ? nil : keys.unused.removeFirst()
            uploadedKeys[jid.user] = keys
            counters.bundlesServed += 1
            answers.append(keys.upload.bundle(for: jid, preKey: preKey))
        }
        return Node(
            tag: "iq", attributes: ["from": .jid(.whatsappServer), "id": .string(iqID), "type": "result"],
            children: [Node(tag: "list", children: answers)])
    }
}
