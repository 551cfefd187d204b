// The server's `pair-device` IQ that starts QR pairing, and its immediate acknowledgement (docs/protocol-notes.md#qr-pair-device).
// The simulator's builder for it is in the WhatsAppServerSide module.

import WABinary

/// The server's `pair-device` request: the refs to show, one at a time, as QR codes.
public struct PairDeviceRequest: Hashable, Sendable {
    /// The IQ id, echoed by the acknowledgement.
    public let iqID: String
    /// The refs in server order (6 from the real server), each opaque printable text.
    public let refs: [String]

    /// A request from its parts, as the simulator sends it.
    public init(iqID: String, refs: [String]) {
        self.iqID = iqID
        self.refs = refs
    }

    /// Reads `<iq type="set" id=…><pair-device><ref>…</ref>…</pair-device></iq>`.
    ///
    /// Refs are taken verbatim with no assumption about prefix or length; children other than `<ref>` are ignored.
    public init(parsing node: Node) throws(PairingError) {
        guard node.tag == "iq", node.attributes["type"]?.string == "set" else {
            throw PairingError(.unexpectedNode, "expected <iq type=\"set\">")
        }
        if let from = node.attributes["from"], Self.jid(from) != JID.whatsappServer {
            throw PairingError(.unexpectedNode, "pair-device not from the server")
        }
        guard let id = node.attributes["id"]?.string, !id.isEmpty else { throw PairingError(.missingAttribute, "iq id") }
        guard let pairDevice = node.child("pair-device") else { throw PairingError(.missingChild, "pair-device") }
        var refs: [String] = []
        for refNode in pairDevice.children("ref") {
            guard let bytes = refNode.contentBytes, !bytes.isEmpty, let ref = String(validating: bytes, as: UTF8.self) else {
                throw PairingError(.malformedRef, "ref #\(refs.count + 1)")
            }
            refs.append(ref)
        }
        guard !refs.isEmpty else { throw PairingError(.noRefs) }
        self.init(iqID: id, refs: refs)
    }

    /// The acknowledgement to send at once: `<iq to="s.whatsapp.net" id=… type="result"/>`.
    public var acknowledgement: Node {
        Node(tag: "iq", attributes: ["to": .jid(.whatsappServer), "id": .string(iqID), "type": "result"])
    }

    private static func jid(_ value: AttributeValue) -> JID? {
        switch value {
        case .jid(let jid): jid
        case .string(let text): try? JID(parsing: text)
        }
    }
}
