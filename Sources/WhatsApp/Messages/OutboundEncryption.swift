import WABinary

/// A message could not be encrypted for a device.
public struct OutboundEncryptionError: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// Encrypts an outgoing text for every device that must receive it, starting sessions from fetched bundles.
public enum OutboundEncryption {
    /// A 1:1 text: the recipient's devices get the message, our own other devices a copy naming the chat.
    /// A device without a session needs its bundle in `bundles`.
    public static func oneToOne(
        _ text: String, to chat: JID, recipientDevices: [JID], ownDevices: [JID], bundles: [JID: SignalPreKeyBundle],
        with signal: SignalProtocol, using generator: inout some RandomNumberGenerator
    ) throws(OutboundEncryptionError) -> [(device: JID, payload: EncryptedPayload)] {
        let message = MessagePlaintext.encodeText(text)
        let copy: [UInt8]
        do { copy = try MessagePlaintext.encodeDeviceSent(message, destination: chat.withoutDevice.description) } catch {
            throw OutboundEncryptionError("\(error)")
        }
        var payloads: [(device: JID, payload: EncryptedPayload)] = []
        for device in recipientDevices {
            payloads.append((device, try encrypt(message, for: device, bundles: bundles, with: signal, using: &generator)))
        }
        for device in ownDevices {
            payloads.append((device, try encrypt(copy, for: device, bundles: bundles, with: signal, using: &generator)))
        }
        return payloads
    }

    /// A group text as one `skmsg` under our sender key, and that key (in a `pkmsg`/`msg`) for each device in
    /// `needsSenderKey` (members' devices and our own other devices that have not had it yet).
    public static func group(
        _ text: String, to group: JID, from ourDevice: JID, needsSenderKey: [JID], bundles: [JID: SignalPreKeyBundle],
        with signal: SignalProtocol, using generator: inout some RandomNumberGenerator
    ) throws(OutboundEncryptionError) -> (keyPayloads: [(device: JID, payload: EncryptedPayload)], groupPayload: EncryptedPayload) {
        let name = SenderKeyName(groupID: group.description, sender: ourDevice.signalAddress)
        do {
            let distribution = try signal.senderKeyDistribution(for: name)
            let keyMessage = MessagePlaintext.encodeSenderKeyDistribution(groupID: group.description, distribution: distribution)
            var keyPayloads: [(device: JID, payload: EncryptedPayload)] = []
            for device in needsSenderKey {
                keyPayloads.append((device, try encrypt(keyMessage, for: device, bundles: bundles, with: signal, using: &generator)))
            }
            let ciphertext = try signal.groupEncrypt(MessagePadding.pad(MessagePlaintext.encodeText(text), using: &generator), as: name)
            return (keyPayloads, EncryptedPayload(kind: .senderKeyMessage, bytes: ciphertext))
        } catch let error as OutboundEncryptionError {
            throw error
        } catch {
            throw OutboundEncryptionError("group \(group): \(error)")
        }
    }

    private static func encrypt(
        _ message: [UInt8], for device: JID, bundles: [JID: SignalPreKeyBundle], with signal: SignalProtocol,
        using generator: inout some RandomNumberGenerator
    ) throws(OutboundEncryptionError) -> EncryptedPayload {
        let address = device.signalAddress
        do {
            if !signal.hasSession(with: address) {
                guard let bundle = bundles[device] else { throw OutboundEncryptionError("no session with \(device) and no prekey bundle") }
                try signal.startSession(with: address, bundle: bundle)
            }
            let ciphertext = try signal.encrypt(MessagePadding.pad(message, using: &generator), for: address)
            return EncryptedPayload(kind: ciphertext.kind == .preKeyMessage ? .preKeyMessage : .message, bytes: ciphertext.bytes)
        } catch let error as OutboundEncryptionError {
            throw error
        } catch {
            throw OutboundEncryptionError("\(device): \(error)")
        }
    }
}
