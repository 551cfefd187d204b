// The one error type of QR pairing, phone-code pairing and pair-success (docs/protocol-notes.md#qr-pair-device to #pair-success-verification).

import WABinary

/// A pairing stanza was malformed, or a pairing check failed.
///
/// Messages name nodes, attributes and checks only; they never contain keys, secrets, codes or refs.
public struct PairingError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Which check failed.
    public struct Reason: Hashable, Sendable, CustomStringConvertible {
        private enum Value: String, Sendable {
            case unexpectedNode = "the node is not the expected pairing stanza"
            case missingChild = "a required child node is missing"
            case missingAttribute = "a required attribute is missing or malformed"
            case malformedContent = "a node's content has the wrong type or length"
            case malformedRef = "a pairing ref is empty or not UTF-8 text"
            case noRefs = "the pair-device request holds no refs"
            case malformedQRCode = "the text is not a pairing QR code"
            case malformedProtobuf = "a protobuf message could not be decoded or encoded"
            case invalidKeyLength = "a key or signature has the wrong length"
            case hmacMismatch = "the device-identity HMAC does not match the ADV secret"
            case invalidAccountSignature = "the account signature does not verify"
            case invalidDeviceSignature = "the device signature does not verify"
            case signingFailed = "a signature could not be produced"
            case invalidPhoneNumber = "the phone number is not digits in international format"
            case invalidLinkCode = "the pairing code is not 8 characters of the pairing-code alphabet"
            case refMismatch = "the link-code ref differs from the one the server issued"
            case keyDerivationFailed = "a key could not be derived"
            case keyAgreementFailed = "X25519 key agreement failed"
            case keyBundleDecryptionFailed = "the key bundle did not decrypt (wrong code or tampered key material)"
            case keyBundleMismatch = "the key bundle names other identity keys than the exchange"
            case replyMismatch = "the pair-device-sign reply does not match the issued device identity"
        }

        private let value: Value
        private init(_ value: Value) { self.value = value }

        /// A short description of the failed check.
        public var description: String { value.rawValue }

        /// The node is not the expected pairing stanza (wrong tag, type or shape).
        public static let unexpectedNode = Reason(.unexpectedNode)
        /// A required child node is missing.
        public static let missingChild = Reason(.missingChild)
        /// A required attribute is missing or malformed.
        public static let missingAttribute = Reason(.missingAttribute)
        /// A node's content has the wrong type or length.
        public static let malformedContent = Reason(.malformedContent)
        /// A `<ref>` is empty or not UTF-8 text.
        public static let malformedRef = Reason(.malformedRef)
        /// A `pair-device` request has no `<ref>` at all.
        public static let noRefs = Reason(.noRefs)
        /// A string is not a pairing QR code.
        public static let malformedQRCode = Reason(.malformedQRCode)
        /// A protobuf message could not be decoded or encoded.
        public static let malformedProtobuf = Reason(.malformedProtobuf)
        /// A key or signature has the wrong length.
        public static let invalidKeyLength = Reason(.invalidKeyLength)
        /// The pair-success HMAC does not match the ADV secret.
        public static let hmacMismatch = Reason(.hmacMismatch)
        /// The primary's account signature does not verify.
        public static let invalidAccountSignature = Reason(.invalidAccountSignature)
        /// The companion's device signature does not verify.
        public static let invalidDeviceSignature = Reason(.invalidDeviceSignature)
        /// A signature could not be produced.
        public static let signingFailed = Reason(.signingFailed)
        /// The phone number is not digits in international format.
        public static let invalidPhoneNumber = Reason(.invalidPhoneNumber)
        /// The pairing code is not 8 characters of the pairing-code alphabet.
        public static let invalidLinkCode = Reason(.invalidLinkCode)
        /// The link-code ref differs from the one the server issued.
        public static let refMismatch = Reason(.refMismatch)
        /// PBKDF2, HKDF or AES-CTR failed.
        public static let keyDerivationFailed = Reason(.keyDerivationFailed)
        /// X25519 key agreement failed (for example a low-order public key).
        public static let keyAgreementFailed = Reason(.keyAgreementFailed)
        /// The AES-GCM key bundle did not open: wrong code or tampered key material.
        public static let keyBundleDecryptionFailed = Reason(.keyBundleDecryptionFailed)
        /// The key bundle opened but names other identity keys than the exchange.
        public static let keyBundleMismatch = Reason(.keyBundleMismatch)
        /// A pair-device-sign reply does not match the device identity that was issued.
        public static let replyMismatch = Reason(.replyMismatch)
    }

    /// Which check failed.
    public let reason: Reason
    /// Where it failed: node, attribute or field names only, never secret values.
    public let detail: String

    package init(_ reason: Reason, _ detail: String = "") {
        self.reason = reason
        self.detail = detail
    }

    /// The failed check and where it failed.
    public var description: String {
        detail.isEmpty ? "pairing failed: \(reason)" : "pairing failed: \(reason) (\(detail))"
    }
}

/// Secure random bytes for pairing material (salts, IVs, nonces, secrets).
package enum PairingRandom {
    /// `count` bytes from the system's cryptographically secure generator.
    package static func bytes(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
    }
}

/// Reading the children and attributes of pairing stanzas with `PairingError`s.
package enum PairingNodes {
    /// The bytes of `parent`'s child `tag`; checks the length when `length` or `minimumLength` is given.
    package static func bytes(of tag: String, in parent: Node, length: Int? = nil, minimumLength: Int? = nil) throws(PairingError) -> [UInt8] {
        guard let child = parent.child(tag) else { throw PairingError(.missingChild, tag) }
        guard let bytes = child.contentBytes else { throw PairingError(.malformedContent, "\(tag) has no byte content") }
        if let length, bytes.count != length { throw PairingError(.malformedContent, "\(tag) is not \(length) bytes") }
        if let minimumLength, bytes.count < minimumLength {
            throw PairingError(.malformedContent, "\(tag) is shorter than \(minimumLength) bytes")
        }
        return bytes
    }

    /// The UTF-8 text of `parent`'s child `tag`.
    package static func text(of tag: String, in parent: Node) throws(PairingError) -> String {
        let bytes = try self.bytes(of: tag, in: parent)
        guard let text = String(validating: bytes, as: UTF8.self) else { throw PairingError(.malformedContent, "\(tag) is not UTF-8") }
        return text
    }

    /// The non-empty string value of attribute `key`.
    package static func string(_ key: String, of node: Node) throws(PairingError) -> String {
        guard let value = node.attributes[key]?.description, !value.isEmpty else {
            throw PairingError(.missingAttribute, "<\(node.tag)> \(key)")
        }
        return value
    }

    /// The value of attribute `key` as a JID (a JID value or text that parses as one).
    package static func jid(_ key: String, of node: Node) throws(PairingError) -> JID {
        guard let jid = try optionalJID(key, of: node) else { throw PairingError(.missingAttribute, "<\(node.tag)> \(key)") }
        return jid
    }

    /// The value of attribute `key` as a JID, or nil when missing; throws when present but not a JID.
    package static func optionalJID(_ key: String, of node: Node) throws(PairingError) -> JID? {
        guard let value = node.attributes[key] else { return nil }
        switch value {
        case .jid(let jid): return jid
        case .string(let text):
            guard let jid = try? JID(parsing: text) else { throw PairingError(.missingAttribute, "<\(node.tag)> \(key) is not a JID") }
            return jid
        }
    }

    /// Throws unless `node` is an `<iq>` whose type is one of `types`; a server error reply names its code.
    package static func expectIQ(_ node: Node, types: Set<String>, context: String) throws(PairingError) {
        guard node.tag == "iq" else { throw PairingError(.unexpectedNode, "\(context): expected <iq>") }
        let type = node.attributes["type"]?.string ?? ""
        if type == "error", !types.contains("error") {
            let code = node.child("error")?.attributes["code"]?.description ?? "?"
            throw PairingError(.unexpectedNode, "\(context): server answered error \(code)")
        }
        guard types.contains(type) else { throw PairingError(.unexpectedNode, "\(context): unexpected iq type") }
    }
}
