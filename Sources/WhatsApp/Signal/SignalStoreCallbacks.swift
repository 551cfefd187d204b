import CSignal
import Foundation

/// The records a libsignal store context reads and writes during one synchronous libsignal call.
final class SignalRecordsBox {
    var records: SignalRecords
    init(_ records: SignalRecords) { self.records = records }

    /// The box behind a callback's `user_data`.
    static func from(_ pointer: UnsafeMutableRawPointer?) -> SignalRecordsBox {
        guard let pointer else { preconditionFailure("libsignal store callback without user data") }
        return Unmanaged<SignalRecordsBox>.fromOpaque(pointer).takeUnretainedValue()
    }
}

/// libsignal's five store tables, filled with C callbacks over a `SignalRecordsBox`. The callbacks capture nothing:
/// the box comes back through `user_data`.
enum SignalStoreCallbacks {
    static func install(in store: OpaquePointer, box: SignalRecordsBox) -> Int32 {
        let userData = Unmanaged.passUnretained(box).toOpaque()
        var sessions = signal_protocol_session_store()
        sessions.load_session_func = loadSession
        sessions.get_sub_device_sessions_func = subDeviceSessions
        sessions.store_session_func = storeSession
        sessions.contains_session_func = containsSession
        sessions.delete_session_func = deleteSession
        sessions.delete_all_sessions_func = deleteAllSessions
        sessions.user_data = userData
        var preKeys = signal_protocol_pre_key_store()
        preKeys.load_pre_key = loadPreKey
        preKeys.store_pre_key = storePreKey
        preKeys.contains_pre_key = containsPreKey
        preKeys.remove_pre_key = removePreKey
        preKeys.user_data = userData
        var signedPreKeys = signal_protocol_signed_pre_key_store()
        signedPreKeys.load_signed_pre_key = loadSignedPreKey
        signedPreKeys.store_signed_pre_key = storeSignedPreKey
        signedPreKeys.contains_signed_pre_key = containsSignedPreKey
        signedPreKeys.remove_signed_pre_key = removeSignedPreKey
        signedPreKeys.user_data = userData
        var identities = signal_protocol_identity_key_store()
        identities.get_identity_key_pair = identityKeyPair
        identities.get_local_registration_id = registrationID
        identities.save_identity = saveIdentity
        identities.is_trusted_identity = isTrustedIdentity
        identities.user_data = userData
        var senderKeys = signal_protocol_sender_key_store()
        senderKeys.store_sender_key = storeSenderKey
        senderKeys.load_sender_key = loadSenderKey
        senderKeys.user_data = userData
        for result in [
            signal_protocol_store_context_set_session_store(store, &sessions),
            signal_protocol_store_context_set_pre_key_store(store, &preKeys),
            signal_protocol_store_context_set_signed_pre_key_store(store, &signedPreKeys),
            signal_protocol_store_context_set_identity_key_store(store, &identities),
            signal_protocol_store_context_set_sender_key_store(store, &senderKeys),
        ] where result != 0 {
            return result
        }
        return 0
    }
}

// MARK: - Conversions

func signalAddress(_ pointer: UnsafePointer<signal_protocol_address>?) -> SignalAddress {
    guard let address = pointer?.pointee else { return SignalAddress(name: "", deviceID: 0) }
    return SignalAddress(name: cString(address.name, address.name_len), deviceID: UInt32(truncatingIfNeeded: address.device_id))
}

private func senderKeyName(_ pointer: UnsafePointer<signal_protocol_sender_key_name>?) -> SenderKeyName {
    guard let name = pointer?.pointee else { return SenderKeyName(groupID: "", sender: SignalAddress(name: "", deviceID: 0)) }
    return SenderKeyName(groupID: cString(name.group_id, name.group_id_len), sender: withUnsafePointer(to: name.sender) { signalAddress($0) })
}

private func cString(_ pointer: UnsafePointer<CChar>?, _ length: Int) -> String {
    guard let pointer, length > 0 else { return "" }
    return pointer.withMemoryRebound(to: UInt8.self, capacity: length) { String(decoding: UnsafeBufferPointer(start: $0, count: length), as: UTF8.self) }
}

/// Serializes a key pair as a libsignal prekey record (`PreKeyRecordStructure`).
private func serializedPreKey(id: UInt32, _ keyPair: Curve25519KeyPair) -> [UInt8]? {
    guard let context = try? LibsignalCurveContext.shared.get().pointer, let pair = signalKeyPair(keyPair, context) else { return nil }
    defer { signal_type_unref(pair) }
    var record: OpaquePointer?
    guard session_pre_key_create(&record, id, pair) == 0, let record else { return nil }
    defer { signal_type_unref(record) }
    var buffer: OpaquePointer?
    guard session_pre_key_serialize(&buffer, record) == 0 else { return nil }
    defer { signal_buffer_free(buffer) }
    return signalBytes(buffer)
}

/// A libsignal key pair for our raw key pair; the caller unrefs it.
func signalKeyPair(_ keyPair: Curve25519KeyPair, _ context: OpaquePointer) -> OpaquePointer? {
    guard let publicKey = signalPublicKey(keyPair.publicKey, context) else { return nil }
    defer { signal_type_unref(publicKey) }
    var privateKey: OpaquePointer?
    guard keyPair.privateKey.withUnsafeBufferPointer({ curve_decode_private_point(&privateKey, $0.baseAddress, $0.count, context) }) == 0,
        let privateKey
    else { return nil }
    defer { signal_type_unref(privateKey) }
    var pair: OpaquePointer?
    guard ec_key_pair_create(&pair, publicKey, privateKey) == 0 else { return nil }
    return pair
}

/// A libsignal public key for a raw 32-byte key; the caller unrefs it.
func signalPublicKey(_ publicKey: [UInt8], _ context: OpaquePointer) -> OpaquePointer? {
    guard publicKey.count == 32 else { return nil }
    let typed = [0x05] + publicKey
    var key: OpaquePointer?
    guard typed.withUnsafeBufferPointer({ curve_decode_point(&key, $0.baseAddress, $0.count, context) }) == 0 else { return nil }
    return key
}

/// The raw key pair inside a serialized libsignal prekey record.
private func keyPair(ofSerializedPreKey data: UnsafeMutablePointer<UInt8>?, _ length: Int) -> (UInt32, Curve25519KeyPair)? {
    guard let context = try? LibsignalCurveContext.shared.get().pointer, let data else { return nil }
    var record: OpaquePointer?
    guard session_pre_key_deserialize(&record, data, length, context) == 0, let record else { return nil }
    defer { signal_type_unref(record) }
    guard let pair = session_pre_key_get_key_pair(record), let raw = rawKeyPair(pair) else { return nil }
    return (session_pre_key_get_id(record), raw)
}

private func rawKeyPair(_ pair: OpaquePointer) -> Curve25519KeyPair? {
    var publicBuffer: OpaquePointer?
    var privateBuffer: OpaquePointer?
    guard ec_public_key_serialize(&publicBuffer, ec_key_pair_get_public(pair)) == 0,
        ec_private_key_serialize(&privateBuffer, ec_key_pair_get_private(pair)) == 0
    else { return nil }
    defer {
        signal_buffer_free(publicBuffer)
        signal_buffer_free(privateBuffer)
    }
    let publicKey = signalBytes(publicBuffer)
    let privateKey = signalBytes(privateBuffer)
    guard publicKey.count == 33, privateKey.count == 32 else { return nil }
    return Curve25519KeyPair(trustedPrivateKey: privateKey, publicKey: Array(publicKey.dropFirst()))
}

// MARK: - Session store

private let loadSession:
    @convention(c) (
        UnsafeMutablePointer<OpaquePointer?>?, UnsafeMutablePointer<OpaquePointer?>?, UnsafePointer<signal_protocol_address>?,
        UnsafeMutableRawPointer?
    ) -> Int32 = { record, _, address, userData in
        guard let stored = SignalRecordsBox.from(userData).records.sessions[signalAddress(address)] else { return 0 }
        record?.pointee = signalBuffer(stored)
        return 1
    }

private let subDeviceSessions:
    @convention(c) (UnsafeMutablePointer<OpaquePointer?>?, UnsafePointer<CChar>?, Int, UnsafeMutableRawPointer?) -> Int32 = {
        output, name, length, userData in
        let user = cString(name, length)
        guard let list = signal_int_list_alloc() else { return SG_ERR_NOMEM }
        let devices = SignalRecordsBox.from(userData).records.sessions.keys.filter { $0.name == user }
        for device in devices { _ = signal_int_list_push_back(list, Int32(truncatingIfNeeded: device.deviceID)) }
        output?.pointee = list
        return Int32(devices.count)
    }

private let storeSession:
    @convention(c) (
        UnsafePointer<signal_protocol_address>?, UnsafeMutablePointer<UInt8>?, Int, UnsafeMutablePointer<UInt8>?, Int, UnsafeMutableRawPointer?
    ) -> Int32 = { address, record, length, _, _, userData in
        let box = SignalRecordsBox.from(userData)
        let key = signalAddress(address)
        box.records.sessions[key] = bufferBytes(record, length)
        box.records.changed.insert(.session(key))
        return 0
    }

private let containsSession: @convention(c) (UnsafePointer<signal_protocol_address>?, UnsafeMutableRawPointer?) -> Int32 = {
    address, userData in
    SignalRecordsBox.from(userData).records.sessions[signalAddress(address)] == nil ? 0 : 1
}

private let deleteSession: @convention(c) (UnsafePointer<signal_protocol_address>?, UnsafeMutableRawPointer?) -> Int32 = {
    address, userData in
    let box = SignalRecordsBox.from(userData)
    let key = signalAddress(address)
    guard box.records.sessions.removeValue(forKey: key) != nil else { return 0 }
    box.records.changed.insert(.session(key))
    return 1
}

private let deleteAllSessions: @convention(c) (UnsafePointer<CChar>?, Int, UnsafeMutableRawPointer?) -> Int32 = { name, length, userData in
    let box = SignalRecordsBox.from(userData)
    let user = cString(name, length)
    let keys = box.records.sessions.keys.filter { $0.name == user }
    for key in keys {
        box.records.sessions[key] = nil
        box.records.changed.insert(.session(key))
    }
    return Int32(keys.count)
}

// MARK: - Prekey stores

private let loadPreKey: @convention(c) (UnsafeMutablePointer<OpaquePointer?>?, UInt32, UnsafeMutableRawPointer?) -> Int32 = {
    record, id, userData in
    guard let keyPair = SignalRecordsBox.from(userData).records.preKeys[id] else { return SG_ERR_INVALID_KEY_ID }
    guard let serialized = serializedPreKey(id: id, keyPair) else { return SG_ERR_UNKNOWN }
    record?.pointee = signalBuffer(serialized)
    return 0
}

private let storePreKey: @convention(c) (UInt32, UnsafeMutablePointer<UInt8>?, Int, UnsafeMutableRawPointer?) -> Int32 = {
    id, record, length, userData in
    guard let (_, keyPair) = keyPair(ofSerializedPreKey: record, length) else { return SG_ERR_INVALID_PROTO_BUF }
    let box = SignalRecordsBox.from(userData)
    box.records.preKeys[id] = keyPair
    box.records.changed.insert(.preKey(id))
    return 0
}

private let containsPreKey: @convention(c) (UInt32, UnsafeMutableRawPointer?) -> Int32 = { id, userData in
    SignalRecordsBox.from(userData).records.preKeys[id] == nil ? 0 : 1
}

private let removePreKey: @convention(c) (UInt32, UnsafeMutableRawPointer?) -> Int32 = { id, userData in
    let box = SignalRecordsBox.from(userData)
    box.records.preKeys[id] = nil
    box.records.changed.insert(.preKey(id))
    return 0
}

private let loadSignedPreKey: @convention(c) (UnsafeMutablePointer<OpaquePointer?>?, UInt32, UnsafeMutableRawPointer?) -> Int32 = {
    record, id, userData in
    let signed = SignalRecordsBox.from(userData).records.signedPreKey
    guard signed.id == id else { return SG_ERR_INVALID_KEY_ID }
    guard let context = try? LibsignalCurveContext.shared.get().pointer, let pair = signalKeyPair(signed.keyPair, context) else {
        return SG_ERR_UNKNOWN
    }
    defer { signal_type_unref(pair) }
    var key: OpaquePointer?
    let created = signed.signature.withUnsafeBufferPointer {
        session_signed_pre_key_create(&key, id, 0, pair, $0.baseAddress, $0.count)
    }
    guard created == 0, let key else { return SG_ERR_UNKNOWN }
    defer { signal_type_unref(key) }
    var buffer: OpaquePointer?
    guard session_signed_pre_key_serialize(&buffer, key) == 0 else { return SG_ERR_UNKNOWN }
    record?.pointee = buffer
    return 0
}

/// Our signed prekey is ours to rotate (`DeviceCredentials`); libsignal never writes or removes it.
private let storeSignedPreKey: @convention(c) (UInt32, UnsafeMutablePointer<UInt8>?, Int, UnsafeMutableRawPointer?) -> Int32 = { _, _, _, _ in
    SG_ERR_INVAL
}

private let containsSignedPreKey: @convention(c) (UInt32, UnsafeMutableRawPointer?) -> Int32 = { id, userData in
    SignalRecordsBox.from(userData).records.signedPreKey.id == id ? 1 : 0
}

private let removeSignedPreKey: @convention(c) (UInt32, UnsafeMutableRawPointer?) -> Int32 = { _, _ in SG_ERR_INVAL }

// MARK: - Identity store

private let identityKeyPair:
    @convention(c) (UnsafeMutablePointer<OpaquePointer?>?, UnsafeMutablePointer<OpaquePointer?>?, UnsafeMutableRawPointer?) -> Int32 = {
        publicData, privateData, userData in
        let identity = SignalRecordsBox.from(userData).records.identity
        publicData?.pointee = signalBuffer([0x05] + identity.publicKey)
        privateData?.pointee = signalBuffer(identity.privateKey)
        return 0
    }

private let registrationID: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutablePointer<UInt32>?) -> Int32 = { userData, output in
    output?.pointee = SignalRecordsBox.from(userData).records.registrationID
    return 0
}

private let saveIdentity:
    @convention(c) (UnsafePointer<signal_protocol_address>?, UnsafeMutablePointer<UInt8>?, Int, UnsafeMutableRawPointer?) -> Int32 = {
        address, key, length, userData in
        let box = SignalRecordsBox.from(userData)
        let device = signalAddress(address)
        let value = key == nil ? nil : bufferBytes(key, length)
        guard box.records.identities[device] != value else { return 0 }
        box.records.identities[device] = value
        box.records.changed.insert(.identity(device))
        return 0
    }

/// WhatsApp trusts a device's new identity (the app shows "security code changed"); the new key is saved.
private let isTrustedIdentity:
    @convention(c) (UnsafePointer<signal_protocol_address>?, UnsafeMutablePointer<UInt8>?, Int, UnsafeMutableRawPointer?) -> Int32 = {
        _, _, _, _ in 1
    }

// MARK: - Sender key store

private let storeSenderKey:
    @convention(c) (
        UnsafePointer<signal_protocol_sender_key_name>?, UnsafeMutablePointer<UInt8>?, Int, UnsafeMutablePointer<UInt8>?, Int,
        UnsafeMutableRawPointer?
    ) -> Int32 = { name, record, length, _, _, userData in
        let box = SignalRecordsBox.from(userData)
        let key = senderKeyName(name)
        box.records.senderKeys[key] = bufferBytes(record, length)
        box.records.changed.insert(.senderKey(key))
        return 0
    }

private let loadSenderKey:
    @convention(c) (
        UnsafeMutablePointer<OpaquePointer?>?, UnsafeMutablePointer<OpaquePointer?>?, UnsafePointer<signal_protocol_sender_key_name>?,
        UnsafeMutableRawPointer?
    ) -> Int32 = { record, _, name, userData in
        guard let stored = SignalRecordsBox.from(userData).records.senderKeys[senderKeyName(name)] else { return 0 }
        record?.pointee = signalBuffer(stored)
        return 1
    }
