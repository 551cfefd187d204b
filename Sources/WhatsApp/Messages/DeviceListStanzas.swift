import WABinary

/// Device lists by usync (`<iq xmlns="usync">`): which devices of an account a message must be encrypted for.
public enum DeviceListStanzas {
    /// Asks for the devices of `users` (accounts, without device), for a message send.
    public static func request(id: String, users: [JID]) -> Node {
        Node(
            tag: "iq", attributes: ["id": .string(id), "xmlns": "usync", "type": "get", "to": .jid(.whatsappServer)],
            children: [
                Node(
                    tag: "usync", attributes: ["sid": .string(id), "mode": "query", "last": "true", "index": "0", "context": "message"],
                    children: [
                        Node(tag: "query", children: [Node(tag: "devices", attributes: ["version": "2"])]),
                        Node(tag: "list", children: users.map { Node(tag: "user", attributes: ["jid": .jid($0.withoutDevice)]) }),
                    ])
            ])
    }

    /// The device JIDs per account in a result (an account without devices maps to an empty list: not on WhatsApp).
    public static func parse(_ response: Node) throws(StanzaError) -> [JID: [JID]] {
        guard let list = response.child("usync")?.child("list") else { throw StanzaError("device list: no <usync><list>") }
        var devices: [JID: [JID]] = [:]
        for user in list.children("user") {
            guard let jid = user.attributes["jid"]?.jid else { throw StanzaError("device list: <user> without jid") }
            let account = jid.withoutDevice
            var found: [JID] = []
            for device in user.child("devices")?.child("device-list")?.children("device") ?? [] {
                guard let text = device.attributes["id"]?.string, let number = UInt16(text) else {
                    throw StanzaError("device list: bad device id for \(account)")
                }
                found.append(account.withDevice(number))
            }
            devices[account] = found
        }
        return devices
    }
}
