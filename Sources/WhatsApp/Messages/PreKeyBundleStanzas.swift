import WABinary

/// Fetching the prekey bundles of devices we have no session with (`<iq xmlns="encrypt" type="get"><key>`).
public enum PreKeyBundleStanzas {
    /// Asks for the bundles of `devices`.
    public static func request(id: String, devices: [JID]) -> Node {
        Node(
            tag: "iq", attributes: ["id": .string(id), "xmlns": "encrypt", "type": "get", "to": .jid(.whatsappServer)],
            children: [Node(tag: "key", children: devices.map { Node(tag: "user", attributes: ["jid": .jid($0), "reason": "identity"]) })])
    }

    /// The bundles in a result, per device; a device the server answers with an error is left out.
    public static func parse(_ response: Node) throws(StanzaError) -> [JID: SignalPreKeyBundle] {
        guard let list = response.child("list") else { throw StanzaError("prekey bundles: no <list>") }
        var bundles: [JID: SignalPreKeyBundle] = [:]
        for user in list.children("user") {
            guard user.child("error") == nil else { continue }
            guard let jid = user.attributes["jid"]?.jid ?? (user.attributes["jid"]?.string).flatMap({ try? JID(parsing: $0) }) else {
                throw StanzaError("prekey bundles: <user> without jid")
            }
            let registration = try bytes(user.child("registration"), "registration", count: 4)
            let identity = try bytes(user.child("identity"), "identity", count: 32)
            guard let signed = user.child("skey") else { throw StanzaError("prekey bundles: \(jid) has no <skey>") }
            let signedID = try bytes(signed.child("id"), "skey id", count: 3)
            let signedKey = try bytes(signed.child("value"), "skey value", count: 32)
            let signature = try bytes(signed.child("signature"), "skey signature", count: 64)
            var preKey: (id: UInt32, publicKey: [UInt8])?
            if let key = user.child("key") {
                preKey = (number(try bytes(key.child("id"), "key id", count: 3)), try bytes(key.child("value"), "key value", count: 32))
            }
            bundles[jid] = SignalPreKeyBundle(
                registrationID: number(registration), deviceID: UInt32(jid.device), identityKey: identity, signedPreKeyID: number(signedID),
                signedPreKey: signedKey, signedPreKeySignature: signature, preKey: preKey)
        }
        return bundles
    }

    private static func bytes(_ node: Node?, _ what: String, count: Int) throws(StanzaError) -> [UInt8] {
        guard let bytes = node?.contentBytes, bytes.count == count else {
            throw StanzaError("prekey bundles: \(what) missing or not \(count) bytes")
        }
        return bytes
    }

    private static func number(_ bytes: [UInt8]) -> UInt32 { bytes.reduce(0) { $0 << 8 | UInt32($1) } }
}
