// The server's side of the link-code stanzas: reading the companion's IQs and building the primary's notification
// (docs/protocol-notes.md#link-code-companion-hello and after).

import WABinary
import WhatsApp

extension CompanionHello {
    /// Reads a companion_hello IQ, children by name.
    public init(parsing node: Node) throws(PairingError) {
        try PairingNodes.expectIQ(node, types: ["set"], context: "companion_hello")
        guard let registration = node.child(linkCodeTag) else { throw PairingError(.missingChild, linkCodeTag) }
        if let stage = registration.attributes["stage"]?.description, stage != "companion_hello" {
            throw PairingError(.unexpectedNode, "stage is not companion_hello")
        }
        self.init(
            iqID: try PairingNodes.string("id", of: node),
            phoneJID: try PairingNodes.jid("jid", of: registration),
            wrappedCompanionEphemeralPublicKey: try PairingNodes.bytes(
                of: "link_code_pairing_wrapped_companion_ephemeral_pub", in: registration, minimumLength: LinkCodeCrypto.wrappedKeyLength),
            noisePublicKey: try PairingNodes.bytes(of: "companion_server_auth_key_pub", in: registration, length: 32),
            platformID: CompanionPlatformID(rawValue: try PairingNodes.text(of: "companion_platform_id", in: registration)),
            platformDisplay: try PairingNodes.text(of: "companion_platform_display", in: registration),
            showPushNotification: registration.attributes["should_show_push_notification"]?.description == "true"
        )
    }

    /// The server's answer carrying the pairing ref: `<iq type="result"><link_code_companion_reg><link_code_pairing_ref>`.
    public func responseNode(ref: [UInt8]) -> Node {
        Node(
            tag: "iq", attributes: ["from": .jid(.whatsappServer), "type": "result", "id": .string(iqID)],
            children: [
                Node(tag: linkCodeTag, attributes: ["stage": "companion_hello"], children: [Node(tag: "link_code_pairing_ref", bytes: ref)])
            ])
    }
}

extension PrimaryHello {
    /// The notification as the server sends it, for the simulator.
    public var node: Node {
        var attributes: Attributes = ["from": .jid(.whatsappServer), "type": .string(linkCodeTag)]
        if let notificationID { attributes["id"] = .string(notificationID) }
        var registrationAttributes = Attributes()
        if let stage { registrationAttributes["stage"] = .string(stage) }
        return Node(
            tag: "notification", attributes: attributes,
            children: [
                Node(
                    tag: linkCodeTag, attributes: registrationAttributes,
                    children: [
                        Node(tag: "link_code_pairing_ref", bytes: ref),
                        Node(tag: "link_code_pairing_wrapped_primary_ephemeral_pub", bytes: wrappedPrimaryEphemeralPublicKey),
                        Node(tag: "primary_identity_pub", bytes: primaryIdentityPublicKey),
                    ])
            ])
    }
}

extension CompanionFinish {
    /// Reads a companion_finish IQ, children by name.
    public init(parsing node: Node) throws(PairingError) {
        try PairingNodes.expectIQ(node, types: ["set"], context: "companion_finish")
        guard let registration = node.child(linkCodeTag) else { throw PairingError(.missingChild, linkCodeTag) }
        if let stage = registration.attributes["stage"]?.description, stage != "companion_finish" {
            throw PairingError(.unexpectedNode, "stage is not companion_finish")
        }
        self.init(
            iqID: try PairingNodes.string("id", of: node),
            phoneJID: try PairingNodes.jid("jid", of: registration),
            wrappedKeyBundle: try PairingNodes.bytes(
                of: "link_code_pairing_wrapped_key_bundle", in: registration, length: LinkCodeCrypto.wrappedKeyBundleLength),
            identityPublicKey: try PairingNodes.bytes(of: "companion_identity_public", in: registration, length: 32),
            ref: try PairingNodes.bytes(of: "link_code_pairing_ref", in: registration, minimumLength: 1)
        )
    }
}
