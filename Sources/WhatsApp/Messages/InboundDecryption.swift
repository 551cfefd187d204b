import WABinary

extension JID {
    /// The device's Signal address: the user, with the domain's agent number for LID and hosted accounts (`123_1`).
    public var signalAddress: SignalAddress {
        let agent: UInt8 =
            switch server {
            case .phoneNumber: 0
            case .lid: 1
            case .hosted: 128
            case .hostedLID: 129
            default: rawAgent
            }
        return SignalAddress(name: agent == 0 ? user : "\(user)_\(agent)", deviceID: UInt32(device))
    }
}

/// A message could not be decrypted or read; `retry` says whether asking the sender to encrypt again can help.
public struct InboundDecryptionError: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String
    /// True when a retry receipt may bring a readable copy (no session, bad MAC, unknown sender key).
    public let retry: Bool
    /// True when the message was decrypted before (a redelivery of a message already stored).
    public let duplicate: Bool
    /// True when a `pkmsg` needs a one-time prekey the Signal state was not given (load it and decrypt again).
    public let unknownPreKey: Bool

    init(_ description: String, retry: Bool, duplicate: Bool = false, unknownPreKey: Bool = false) {
        self.description = description
        self.retry = retry
        self.duplicate = duplicate
        self.unknownPreKey = unknownPreKey
    }
}

/// Decrypts an incoming message's payloads in stanza order with the account's Signal state.
public enum InboundDecryption {
    /// The message's content. A `pkmsg`/`msg` may carry the sender's group key, which is stored before the group's
    /// `skmsg` that follows it is opened; the content is that of the last payload that has any. A redelivered
    /// message (every payload already decrypted) throws a non-retryable duplicate error.
    public static func decrypt(_ message: IncomingMessage, with signal: SignalProtocol) throws(InboundDecryptionError) -> MessagePlaintext {
        let sender = message.sender.signalAddress
        var content: MessagePlaintext?
        for payload in message.payloads {
            let padded: [UInt8]
            do {
                switch payload.kind {
                case .preKeyMessage: padded = try signal.decrypt(SignalCiphertext(kind: .preKeyMessage, bytes: payload.bytes), from: sender)
                case .message: padded = try signal.decrypt(SignalCiphertext(kind: .message, bytes: payload.bytes), from: sender)
                case .senderKeyMessage:
                    guard message.isGroup else { throw InboundDecryptionError("skmsg outside a group", retry: false) }
                    padded = try signal.groupDecrypt(payload.bytes, from: SenderKeyName(groupID: message.chat.description, sender: sender))
                }
            } catch let error as SignalError {
                throw InboundDecryptionError(
                    "\(payload.kind.rawValue) from \(sender): \(error)", retry: !error.isDuplicate, duplicate: error.isDuplicate,
                    unknownPreKey: error.isUnknownPreKey && payload.kind == .preKeyMessage)
            } catch let error as InboundDecryptionError {
                throw error
            } catch {
                throw InboundDecryptionError("\(payload.kind.rawValue) from \(sender): \(error)", retry: true)
            }
            let plaintext: MessagePlaintext
            do { plaintext = try MessagePlaintext(decoding: try MessagePadding.unpad(padded)) } catch {
                throw InboundDecryptionError("\(payload.kind.rawValue) from \(sender): \(error)", retry: false)
            }
            if let (groupID, distribution) = plaintext.senderKeyDistribution, message.isGroup, groupID == message.chat.description {
                do { try signal.processSenderKeyDistribution(distribution, for: SenderKeyName(groupID: groupID, sender: sender)) } catch {
                    throw InboundDecryptionError("sender key of \(sender) for \(groupID): \(error)", retry: true)
                }
            }
            if plaintext.text != nil || !plaintext.unsupported.isEmpty || content == nil { content = plaintext }
        }
        guard let content else { throw InboundDecryptionError("message without payloads", retry: false) }
        return content
    }
}
