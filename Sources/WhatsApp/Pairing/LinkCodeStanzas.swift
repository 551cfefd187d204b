// The three link-code stanzas as the companion builds and reads them (docs/protocol-notes.md#link-code-companion-hello and after); the server's
// side of each (parsing the companion's IQs, building the notification) is in the WhatsAppServerSide module.

import WABinary

/// The `link_code_companion_reg` tag: the IQ child and the notification type of every link-code stage.
package let linkCodeTag = "link_code_companion_reg"

/// The companion's stage-1 IQ `companion_hello` (docs/protocol-notes.md#link-code-companion-hello), as built by the companion and
/// read by the simulator.
public struct CompanionHello: Hashable, Sendable {
    /// The IQ id.
    public var iqID: String
    /// The phone number's JID, `<digits>@s.whatsapp.net`.
    public var phoneJID: JID
    /// salt(32) || iv(16) || AES-CTR(code key, companion ephemeral public key)(32).
    public var wrappedCompanionEphemeralPublicKey: [UInt8]
    /// The companion's 32-byte Noise static public key (`companion_server_auth_key_pub`).
    public var noisePublicKey: [UInt8]
    /// The companion's web-client type.
    public var platformID: CompanionPlatformID
    /// `Browser (OS)`, e.g. `Chrome (Mac OS)`; the server rejects unrecognised browsers with 400.
    public var platformDisplay: String
    /// Whether the phone shows a push notification asking for the code.
    public var showPushNotification: Bool

    /// A companion_hello from its parts.
    public init(
        iqID: String, phoneJID: JID, wrappedCompanionEphemeralPublicKey: [UInt8], noisePublicKey: [UInt8],
        platformID: CompanionPlatformID, platformDisplay: String, showPushNotification: Bool
    ) {
        self.iqID = iqID
        self.phoneJID = phoneJID
        self.wrappedCompanionEphemeralPublicKey = wrappedCompanionEphemeralPublicKey
        self.noisePublicKey = noisePublicKey
        self.platformID = platformID
        self.platformDisplay = platformDisplay
        self.showPushNotification = showPushNotification
    }

    /// The IQ: `<iq to="s.whatsapp.net" type="set" xmlns="md" id=…><link_code_companion_reg stage="companion_hello" …>`.
    public var node: Node {
        let registration = Node(
            tag: linkCodeTag,
            attributes: [
                "jid": .jid(phoneJID), "stage": "companion_hello",
                "should_show_push_notification": .string(showPushNotification ? "true" : "false"),
            ],
            children: [
                Node(tag: "link_code_pairing_wrapped_companion_ephemeral_pub", bytes: wrappedCompanionEphemeralPublicKey),
                Node(tag: "companion_server_auth_key_pub", bytes: noisePublicKey),
                Node(tag: "companion_platform_id", content: .string(platformID.rawValue)),
                Node(tag: "companion_platform_display", content: .string(platformDisplay)),
                Node(tag: "link_code_pairing_nonce", bytes: [0x00]),
            ]
        )
        return Node(
            tag: "iq", attributes: ["to": .jid(.whatsappServer), "type": "set", "xmlns": "md", "id": .string(iqID)],
            children: [registration])
    }

}

/// The server's stage-2 notification carrying the primary's wrapped ephemeral key (docs/protocol-notes.md#link-code-primary-hello).
public struct PrimaryHello: Hashable, Sendable {
    /// The notification id, for the ack; nil when absent.
    public var notificationID: String?
    /// The `stage` attribute (`primary_hello` per zapo), when present; not checked.
    public var stage: String?
    /// The ref from the companion_hello response.
    public var ref: [UInt8]
    /// salt(32) || iv(16) || AES-CTR(code key, primary ephemeral public key)(32); at least 80 bytes.
    public var wrappedPrimaryEphemeralPublicKey: [UInt8]
    /// The primary's 32-byte identity public key.
    public var primaryIdentityPublicKey: [UInt8]

    /// A primary hello from its parts.
    public init(notificationID: String?, stage: String? = "primary_hello", ref: [UInt8], wrappedPrimaryEphemeralPublicKey: [UInt8], primaryIdentityPublicKey: [UInt8]) {
        self.notificationID = notificationID
        self.stage = stage
        self.ref = ref
        self.wrappedPrimaryEphemeralPublicKey = wrappedPrimaryEphemeralPublicKey
        self.primaryIdentityPublicKey = primaryIdentityPublicKey
    }

    /// Reads `<notification type="link_code_companion_reg"><link_code_companion_reg …>`; children by name, `t` and `stage` optional.
    public init(parsing node: Node) throws(PairingError) {
        guard node.tag == "notification" else { throw PairingError(.unexpectedNode, "expected <notification>") }
        if let type = node.attributes["type"]?.description, type != linkCodeTag {
            throw PairingError(.unexpectedNode, "notification type is not \(linkCodeTag)")
        }
        guard let registration = node.child(linkCodeTag) else { throw PairingError(.missingChild, linkCodeTag) }
        self.init(
            notificationID: node.attributes["id"]?.description,
            stage: registration.attributes["stage"]?.description,
            ref: try PairingNodes.bytes(of: "link_code_pairing_ref", in: registration, minimumLength: 1),
            wrappedPrimaryEphemeralPublicKey: try PairingNodes.bytes(
                of: "link_code_pairing_wrapped_primary_ephemeral_pub", in: registration, minimumLength: LinkCodeCrypto.wrappedKeyLength),
            primaryIdentityPublicKey: try PairingNodes.bytes(of: "primary_identity_pub", in: registration, length: 32)
        )
    }
}

/// The companion's stage-3 IQ `companion_finish` with the encrypted key bundle (docs/protocol-notes.md#link-code-companion-finish).
public struct CompanionFinish: Hashable, Sendable {
    /// The IQ id.
    public var iqID: String
    /// The phone number's JID.
    public var phoneJID: JID
    /// bundleSalt(32) || bundleNonce(12) || AES-GCM ciphertext and tag(112): 156 bytes.
    public var wrappedKeyBundle: [UInt8]
    /// The companion's 32-byte identity public key.
    public var identityPublicKey: [UInt8]
    /// The pairing ref, echoed.
    public var ref: [UInt8]

    /// A companion_finish from its parts.
    public init(iqID: String, phoneJID: JID, wrappedKeyBundle: [UInt8], identityPublicKey: [UInt8], ref: [UInt8]) {
        self.iqID = iqID
        self.phoneJID = phoneJID
        self.wrappedKeyBundle = wrappedKeyBundle
        self.identityPublicKey = identityPublicKey
        self.ref = ref
    }

    /// The IQ: `<iq to="s.whatsapp.net" type="set" xmlns="md" id=…><link_code_companion_reg stage="companion_finish" …>`.
    public var node: Node {
        Node(
            tag: "iq", attributes: ["to": .jid(.whatsappServer), "type": "set", "xmlns": "md", "id": .string(iqID)],
            children: [
                Node(
                    tag: linkCodeTag, attributes: ["jid": .jid(phoneJID), "stage": "companion_finish"],
                    children: [
                        Node(tag: "link_code_pairing_wrapped_key_bundle", bytes: wrappedKeyBundle),
                        Node(tag: "companion_identity_public", bytes: identityPublicKey),
                        Node(tag: "link_code_pairing_ref", bytes: ref),
                    ])
            ])
    }
}
