import CSignal
import Foundation

/// One account's Signal protocol through libsignal-protocol-c: sessions from prekey bundles (X3DH), the Double
/// Ratchet for `pkmsg`/`msg`, and sender keys for groups. libsignal does the cryptography; this type lends it
/// `records` as its store and lists what each operation changed in `records.changed`.
///
/// Not thread-safe: one owner (the session's actor) uses it at a time.
public final class SignalProtocol {
    private let context: OpaquePointer
    private let store: OpaquePointer
    private let box: SignalRecordsBox

    /// The account's Signal state, as the last operation left it.
    public var records: SignalRecords {
        get { box.records }
        set { box.records = newValue }
    }

    public init(records: SignalRecords) throws(SignalError) {
        guard let context = try? LibsignalCurveContext.shared.get().pointer else { throw SignalError(code: -1000, operation: "context") }
        var store: OpaquePointer?
        let created = signal_protocol_store_context_create(&store, context)
        guard created == 0, let store else { throw SignalError(code: created, operation: "store context") }
        self.context = context
        self.store = store
        box = SignalRecordsBox(records)
        let installed = SignalStoreCallbacks.install(in: store, box: box)
        // Every stored property is set: a throw from here runs deinit, which destroys the store context.
        guard installed == 0 else { throw SignalError(code: installed, operation: "store callbacks") }
    }

    deinit { signal_protocol_store_context_destroy(store) }

    // MARK: Sessions

    /// Starts a session with `address` from its prekey bundle (X3DH); the next message to it is a `pkmsg`.
    public func startSession(with address: SignalAddress, bundle: SignalPreKeyBundle) throws(SignalError) {
        try withAddress(address) { (address) throws(SignalError) in
            guard let identity = signalPublicKey(bundle.identityKey, context), let signed = signalPublicKey(bundle.signedPreKey, context)
            else { throw SignalError(code: -1002, operation: "prekey bundle") }
            defer {
                signal_type_unref(identity)
                signal_type_unref(signed)
            }
            var preKey: OpaquePointer?
            if let (_, publicKey) = bundle.preKey {
                guard let key = signalPublicKey(publicKey, context) else { throw SignalError(code: -1002, operation: "prekey bundle") }
                preKey = key
            }
            defer { if let preKey { signal_type_unref(preKey) } }
            var created: OpaquePointer?
            let made = bundle.signedPreKeySignature.withUnsafeBufferPointer {
                session_pre_key_bundle_create(
                    &created, bundle.registrationID, Int32(truncatingIfNeeded: bundle.deviceID), bundle.preKey?.id ?? 0, preKey,
                    bundle.signedPreKeyID, signed, $0.baseAddress, $0.count, identity)
            }
            guard made == 0, let created else { throw SignalError(code: made, operation: "prekey bundle") }
            defer { signal_type_unref(created) }
            var builder: OpaquePointer?
            let built = session_builder_create(&builder, store, address, context)
            guard built == 0, let builder else { throw SignalError(code: built, operation: "session builder") }
            defer { session_builder_free(builder) }
            try check(session_builder_process_pre_key_bundle(builder, created), "prekey bundle")
        }
    }

    /// True if a session with `address` exists.
    public func hasSession(with address: SignalAddress) -> Bool { box.records.sessions[address] != nil }

    /// Encrypts `plaintext` (already padded) for `address`: a `pkmsg` until the other side answered, then `msg`.
    public func encrypt(_ plaintext: [UInt8], for address: SignalAddress) throws(SignalError) -> SignalCiphertext {
        try withCipher(address) { (cipher) throws(SignalError) in
            var message: OpaquePointer?
            try check(withNonEmptyPointer(plaintext) { session_cipher_encrypt(cipher, $0, $1, &message) }, "encrypt")
            defer { signal_type_unref(message) }
            let kind: SignalCiphertext.Kind = ciphertext_message_get_type(message) == CIPHERTEXT_PREKEY_TYPE ? .preKeyMessage : .message
            return SignalCiphertext(kind: kind, bytes: signalBytes(ciphertext_message_get_serialized(message)))
        }
    }

    /// Decrypts a `pkmsg` or `msg` from `address`; a `pkmsg` starts (or restarts) the session and uses up its prekey.
    public func decrypt(_ ciphertext: SignalCiphertext, from address: SignalAddress) throws(SignalError) -> [UInt8] {
        try withCipher(address) { (cipher) throws(SignalError) in
            var plaintext: OpaquePointer?
            switch ciphertext.kind {
            case .preKeyMessage:
                var message: OpaquePointer?
                try check(withNonEmptyPointer(ciphertext.bytes) { pre_key_signal_message_deserialize(&message, $0, $1, context) }, "pkmsg")
                defer { signal_type_unref(message) }
                try check(session_cipher_decrypt_pre_key_signal_message(cipher, message, nil, &plaintext), "decrypt pkmsg")
            case .message:
                var message: OpaquePointer?
                try check(withNonEmptyPointer(ciphertext.bytes) { signal_message_deserialize(&message, $0, $1, context) }, "msg")
                defer { signal_type_unref(message) }
                try check(session_cipher_decrypt_signal_message(cipher, message, nil, &plaintext), "decrypt msg")
            }
            defer { signal_buffer_free(plaintext) }
            return signalBytes(plaintext)
        }
    }

    // MARK: Groups

    /// Our sender key for `group` as a SenderKeyDistributionMessage (created on first use), to send to each member
    /// device inside a `pkmsg`/`msg`.
    public func senderKeyDistribution(for name: SenderKeyName) throws(SignalError) -> [UInt8] {
        try withSenderKeyName(name) { (name) throws(SignalError) in
            var builder: OpaquePointer?
            try check(group_session_builder_create(&builder, store, context), "group builder")
            defer { group_session_builder_free(builder) }
            var message: OpaquePointer?
            try check(group_session_builder_create_session(builder, &message, name), "sender key")
            defer { signal_type_unref(message) }
            return signalBytes(ciphertext_message_get_serialized(message))
        }
    }

    /// Stores a sender's key for `group` from its SenderKeyDistributionMessage.
    public func processSenderKeyDistribution(_ distribution: [UInt8], for name: SenderKeyName) throws(SignalError) {
        try withSenderKeyName(name) { (name) throws(SignalError) in
            var message: OpaquePointer?
            try check(withNonEmptyPointer(distribution) { sender_key_distribution_message_deserialize(&message, $0, $1, context) }, "SKDM")
            defer { signal_type_unref(message) }
            var builder: OpaquePointer?
            try check(group_session_builder_create(&builder, store, context), "group builder")
            defer { group_session_builder_free(builder) }
            try check(group_session_builder_process_session(builder, name, message), "SKDM")
        }
    }

    /// Encrypts `plaintext` (already padded) with our sender key for the group: one `skmsg` for every member.
    public func groupEncrypt(_ plaintext: [UInt8], as name: SenderKeyName) throws(SignalError) -> [UInt8] {
        try withGroupCipher(name) { (cipher) throws(SignalError) in
            var message: OpaquePointer?
            try check(withNonEmptyPointer(plaintext) { group_cipher_encrypt(cipher, $0, $1, &message) }, "group encrypt")
            defer { signal_type_unref(message) }
            return signalBytes(ciphertext_message_get_serialized(message))
        }
    }

    /// Decrypts an `skmsg` from the sender named in `name`.
    public func groupDecrypt(_ ciphertext: [UInt8], from name: SenderKeyName) throws(SignalError) -> [UInt8] {
        try withGroupCipher(name) { (cipher) throws(SignalError) in
            var message: OpaquePointer?
            try check(withNonEmptyPointer(ciphertext) { sender_key_message_deserialize(&message, $0, $1, context) }, "skmsg")
            defer { signal_type_unref(message) }
            var plaintext: OpaquePointer?
            try check(group_cipher_decrypt(cipher, message, nil, &plaintext), "group decrypt")
            defer { signal_buffer_free(plaintext) }
            return signalBytes(plaintext)
        }
    }

    // MARK: Scoped libsignal objects (they keep pointers to the address, so it must outlive them)

    private func withAddress<R>(_ address: SignalAddress, _ body: (UnsafePointer<signal_protocol_address>) throws(SignalError) -> R)
        throws(SignalError) -> R
    {
        var utf8 = Array(address.name.utf8CString)
        return try utf8.withUnsafeMutableBufferPointer { (name) throws(SignalError) -> R in
            var raw = signal_protocol_address(
                name: name.baseAddress, name_len: name.count - 1, device_id: Int32(truncatingIfNeeded: address.deviceID))
            return try withUnsafePointer(to: &raw) { (pointer) throws(SignalError) -> R in try body(pointer) }
        }
    }

    private func withCipher<R>(_ address: SignalAddress, _ body: (OpaquePointer) throws(SignalError) -> R) throws(SignalError) -> R {
        try withAddress(address) { (address) throws(SignalError) -> R in
            var cipher: OpaquePointer?
            let created = session_cipher_create(&cipher, store, address, context)
            guard created == 0, let cipher else { throw SignalError(code: created, operation: "session cipher") }
            defer { session_cipher_free(cipher) }
            return try body(cipher)
        }
    }

    private func withSenderKeyName<R>(_ name: SenderKeyName, _ body: (UnsafePointer<signal_protocol_sender_key_name>) throws(SignalError) -> R)
        throws(SignalError) -> R
    {
        var group = Array(name.groupID.utf8CString)
        return try group.withUnsafeMutableBufferPointer { (group) throws(SignalError) -> R in
            try withAddress(name.sender) { (sender) throws(SignalError) -> R in
                var raw = signal_protocol_sender_key_name(group_id: group.baseAddress, group_id_len: group.count - 1, sender: sender.pointee)
                return try withUnsafePointer(to: &raw) { (pointer) throws(SignalError) -> R in try body(pointer) }
            }
        }
    }

    private func withGroupCipher<R>(_ name: SenderKeyName, _ body: (OpaquePointer) throws(SignalError) -> R) throws(SignalError) -> R {
        try withSenderKeyName(name) { (name) throws(SignalError) -> R in
            var cipher: OpaquePointer?
            let created = group_cipher_create(&cipher, store, name, context)
            guard created == 0, let cipher else { throw SignalError(code: created, operation: "group cipher") }
            defer { group_cipher_free(cipher) }
            return try body(cipher)
        }
    }
}

private func check(_ result: Int32, _ operation: String) throws(SignalError) {
    guard result >= 0 else { throw SignalError(code: result, operation: operation) }
}
