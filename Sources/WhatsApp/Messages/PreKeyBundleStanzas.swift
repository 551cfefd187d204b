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
            let context = "prekey bundle of \(jid)"
            let registration = try KeyNodes.readRegistration(in: user, context: context)
            let identity = try KeyNodes.bytes(user.child("identity"), "identity", count: 32, context: context)
            let signed = try KeyNodes.readSignedKey(in: user, context: context)
            var preKey: (id: UInt32, publicKey: [UInt8])?
            if let key = user.child("key") { preKey = try KeyNodes.readKey(key, context: context) }
            bundles[jid] = SignalPreKeyBundle(
                registrationID: registration, deviceID: UInt32(jid.device), identityKey: identity, signedPreKeyID: signed.id,
                signedPreKey: signed.publicKey, signedPreKeySignature: signed.signature, preKey: preKey)
        }
        return bundles
    }
}
