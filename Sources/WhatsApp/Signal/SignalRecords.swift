/// A remote device as the Signal protocol names it: the account's user part and a device number.
public struct SignalAddress: Hashable, Sendable, CustomStringConvertible {
    /// The user part of the device's JID (`15551234567`, or a LID user).
    public let name: String
    /// The device number (0 is the phone).
    public let deviceID: UInt32

    public init(name: String, deviceID: UInt32) {
        self.name = name
        self.deviceID = deviceID
    }

    public var description: String { "\(name).\(deviceID)" }
}

/// One sender's key chain in one group.
public struct SenderKeyName: Hashable, Sendable, CustomStringConvertible {
    /// The group's JID (`120363…@g.us`).
    public let groupID: String
    /// The sending device.
    public let sender: SignalAddress

    public init(groupID: String, sender: SignalAddress) {
        self.groupID = groupID
        self.sender = sender
    }

    public var description: String { "\(groupID)/\(sender)" }
}

/// Which stored record of an account's messaging state: what a Signal operation wrote or deleted, and the
/// phone number learned for a LID.
public enum SignalRecordKey: Hashable, Sendable {
    case session(SignalAddress)
    case identity(SignalAddress)
    case senderKey(SenderKeyName)
    case preKey(UInt32)
    /// The phone-number user of a LID user (bytes: the digits), learned from `sender_pn`/`participant_pn`.
    case phoneNumberOfLID(String)
}

/// One account's Signal state in the forms it is stored: our identity and prekeys, libsignal's serialized session and
/// sender-key records, and the identity keys of remote devices. Every write is listed in `changed`, so the caller can
/// store exactly those records durably before it acknowledges anything.
public struct SignalRecords: Sendable {
    /// Our identity key pair (the device's `identityKey`).
    public var identity: Curve25519KeyPair
    /// Our registration id.
    public var registrationID: UInt32
    /// Our current signed prekey.
    public var signedPreKey: SignedPreKey
    /// Our one-time prekeys not used yet; a prekey message that uses one removes it.
    public var preKeys: [UInt32: Curve25519KeyPair]
    /// Serialized session records (libsignal's `RecordStructure`), per remote device.
    public var sessions: [SignalAddress: [UInt8]]
    /// Identity keys of remote devices (33 bytes, `0x05` first), as last seen.
    public var identities: [SignalAddress: [UInt8]]
    /// Serialized sender-key records, per group and sender.
    public var senderKeys: [SenderKeyName: [UInt8]]
    /// Records written or deleted since the caller last cleared this.
    public var changed: Set<SignalRecordKey> = []

    public init(
        identity: Curve25519KeyPair, registrationID: UInt32, signedPreKey: SignedPreKey, preKeys: [UInt32: Curve25519KeyPair] = [:],
        sessions: [SignalAddress: [UInt8]] = [:], identities: [SignalAddress: [UInt8]] = [:], senderKeys: [SenderKeyName: [UInt8]] = [:]
    ) {
        self.identity = identity
        self.registrationID = registrationID
        self.signedPreKey = signedPreKey
        self.preKeys = preKeys
        self.sessions = sessions
        self.identities = identities
        self.senderKeys = senderKeys
    }
}

/// What a remote device publishes so others can start a session with it (a prekey bundle).
public struct SignalPreKeyBundle: Sendable, Equatable {
    public var registrationID: UInt32
    public var deviceID: UInt32
    /// The identity key, 32 bytes (no `0x05`).
    public var identityKey: [UInt8]
    public var signedPreKeyID: UInt32
    /// The signed prekey's public half, 32 bytes.
    public var signedPreKey: [UInt8]
    /// XEdDSA signature of the signed prekey (with `0x05`) by the identity key.
    public var signedPreKeySignature: [UInt8]
    /// A one-time prekey, when the server had one left.
    public var preKey: (id: UInt32, publicKey: [UInt8])?

    public init(
        registrationID: UInt32, deviceID: UInt32, identityKey: [UInt8], signedPreKeyID: UInt32, signedPreKey: [UInt8],
        signedPreKeySignature: [UInt8], preKey: (id: UInt32, publicKey: [UInt8])?
    ) {
        self.registrationID = registrationID
        self.deviceID = deviceID
        self.identityKey = identityKey
        self.signedPreKeyID = signedPreKeyID
        self.signedPreKey = signedPreKey
        self.signedPreKeySignature = signedPreKeySignature
        self.preKey = preKey
    }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.registrationID == rhs.registrationID && lhs.deviceID == rhs.deviceID && lhs.identityKey == rhs.identityKey
            && lhs.signedPreKeyID == rhs.signedPreKeyID && lhs.signedPreKey == rhs.signedPreKey
            && lhs.signedPreKeySignature == rhs.signedPreKeySignature && lhs.preKey?.id == rhs.preKey?.id
            && lhs.preKey?.publicKey == rhs.preKey?.publicKey
    }
}

/// A message encrypted for one device: `pkmsg` starts a session, `msg` continues one.
public struct SignalCiphertext: Sendable, Equatable {
    public enum Kind: String, Sendable {
        case preKeyMessage = "pkmsg"
        case message = "msg"
    }

    public var kind: Kind
    public var bytes: [UInt8]

    public init(kind: Kind, bytes: [UInt8]) {
        self.kind = kind
        self.bytes = bytes
    }
}

/// A Signal operation failed; `code` is libsignal's `SG_ERR_…` value.
public struct SignalError: Error, Sendable, Equatable, CustomStringConvertible {
    public let code: Int32
    public let operation: String

    public init(code: Int32, operation: String) {
        self.code = code
        self.operation = operation
    }

    /// No session with the device exists (a `msg` before any `pkmsg`).
    public var isNoSession: Bool { code == -1008 }
    /// The message was decrypted before (a redelivery).
    public var isDuplicate: Bool { code == -1001 }
    /// A `pkmsg` names a one-time prekey the state does not hold.
    public var isUnknownPreKey: Bool { code == -1003 }

    public var description: String {
        let name: String =
            switch code {
            case -12: "out of memory"
            case -22: "invalid argument"
            case -1001: "duplicate message"
            case -1002: "invalid key"
            case -1003: "unknown prekey id"
            case -1004: "bad MAC"
            case -1005: "invalid message"
            case -1006: "unsupported version"
            case -1007: "legacy message"
            case -1008: "no session"
            case -1009: "stale key exchange"
            case -1010: "untrusted identity"
            case -1100: "malformed protobuf"
            default: "error"
            }
        return "\(operation): \(name) (\(code))"
    }
}
