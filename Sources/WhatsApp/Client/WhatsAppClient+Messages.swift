import Foundation
import Logging
import WABinary

/// Received messages: decrypted, stored durably with the Signal state that decrypted them, and only then receipted and
/// acked (a crash before the store gets the message redelivered).
extension WhatsAppClient {
    /// Handles one `<message>`; returns a reason when the connection must end (the stores are away: no ack, so the
    /// server delivers the message again on the next connection). Returns once the message's save is queued, or
    /// later while `SignalSaves.limit` saves are pending.
    func receiveMessage(_ node: Node) async -> DisconnectReason? {
        if let reason = await decryptAndQueue(node) { return reason }
        await waitForSaveRoom()
        return nil
    }

    /// Decrypts a `<message>` and queues its event with the Signal state that decrypted it; the receipt and the ack
    /// follow once that is durable.
    private func decryptAndQueue(_ node: Node) async -> DisconnectReason? {
        guard let messaging, let credentials, let account = credentials.pairedAccount else {
            ackStanza(node)
            return nil
        }
        var message: IncomingMessage
        do { message = try IncomingMessage(parsing: node) } catch {
            logger.warning("unreadable message stanza acked", metadata: ["error": "\(error)"])
            ackStanza(node)
            return nil
        }
        await acquireSignalState()
        defer { releaseSignalState() }
        var records: SignalRecords
        let knownPhoneNumber: String?
        do { (records, knownPhoneNumber) = try await signalState(for: message, credentials: credentials, store: messaging.signalStore) } catch {
            return await storesUnavailable("the Signal records cannot be read: \(error)")
        }
        // A LID sender's phone number: learned when the stanza names it, reported from what was learned when not.
        var learned: [SignalRecordKey: [UInt8]?] = [:]
        if message.sender.isLIDSender {
            if let phoneNumber = message.senderPhoneNumber?.withoutDevice, phoneNumber.user != knownPhoneNumber {
                learned[.phoneNumberOfLID(message.sender.user)] = Array(phoneNumber.user.utf8)
            } else if message.senderPhoneNumber == nil, let knownPhoneNumber {
                message.senderPhoneNumber = .phoneNumber(knownPhoneNumber)
            }
        }
        var signal: SignalProtocol
        var decrypted: Result<MessagePlaintext, InboundDecryptionError>
        do {
            signal = try SignalProtocol(records: records)
            decrypted = Result { () throws(InboundDecryptionError) in try InboundDecryption.decrypt(message, with: signal) }
            // A one-time prekey is read (a sealed file) only when libsignal asks for it: the first `pkmsg` of a session,
            // not the ones after it that carry the same base key. The retry starts from the records as loaded.
            let preKeyIDs = Set(message.payloads.compactMap(\.preKeyID))
            if case .failure(let error) = decrypted, error.unknownPreKey, !preKeyIDs.isEmpty {
                do {
                    for preKey in try await store.loadPreKeys(ids: preKeyIDs) { records.preKeys[preKey.id] = preKey.keyPair }
                } catch {
                    return await storesUnavailable("the prekeys cannot be read: \(error)")
                }
                signal = try SignalProtocol(records: records)
                decrypted = Result { () throws(InboundDecryptionError) in try InboundDecryption.decrypt(message, with: signal) }
            }
        } catch {
            return await storesUnavailable("the Signal state cannot be set up: \(error)")
        }
        let content: MessagePlaintext
        do { content = try decrypted.get() } catch {
            if error.retry {
                logger.warning("message not decrypted; asking for a retry", metadata: ["id": "\(message.id)", "error": "\(error)"])
                try? send(message.retryReceipt(count: 1, registrationID: credentials.registrationID))
            } else if error.duplicate {
                logger.debug("message delivered again after it was stored", metadata: ["id": "\(message.id)"])
                try? send(message.deliveryReceipt)
            } else {
                logger.warning("message unreadable; acked", metadata: ["id": "\(message.id)", "error": "\(error)"])
            }
            ackStanza(node)
            return nil
        }
        let received = ReceivedMessage(message, content: content, account: account.jid, accountLID: account.lid)
        // The event and the state that decrypted it in one transaction: a crash before it commits gets a redelivery that
        // decrypts again with the old state, one after it a redelivery dropped as already decrypted.
        let state = signal.records
        await queueSave(
            state.pendingRecordChanges.merging(learned) { $1 }, event: messaging.inbox.event(for: received),
            stanzas: [message.deliveryReceipt] + (Stanzas.ack(for: node).map { [$0] } ?? []), consumedPreKeys: state.consumedPreKeyIDs,
            to: messaging.signalStore)
        return nil
    }

    /// The Signal state one message needs (our keys, and the sender's session, identity and group key from the
    /// store; one-time prekeys are loaded when libsignal asks), and the phone number learned before for a LID sender.
    private func signalState(for message: IncomingMessage, credentials: DeviceCredentials, store signalStore: any SignalRecordStore) async throws
        -> (SignalRecords, knownPhoneNumber: String?)
    {
        let sender = message.sender.signalAddress
        var keys: [SignalRecordKey] = [.session(sender), .identity(sender)]
        if message.isGroup { keys.append(.senderKey(SenderKeyName(groupID: message.chat.description, sender: sender))) }
        if message.sender.isLIDSender { keys.append(.phoneNumberOfLID(message.sender.user)) }
        var records = SignalRecords(identity: credentials.identityKey, registrationID: credentials.registrationID, signedPreKey: credentials.signedPreKey)
        let loaded = try await loadSignalRecords(keys, from: signalStore)
        records.merge(loaded: loaded)
        let phoneNumber = loaded[.phoneNumberOfLID(message.sender.user)].flatMap { String(validating: $0, as: UTF8.self) }
        return (records, phoneNumber)
    }

    /// Ends the connection unacknowledged: what could not be stored comes again with the next connection.
    func storesUnavailable(_ description: String) async -> DisconnectReason {
        logger.error("not stored; reconnecting for a redelivery", metadata: ["error": "\(description)"])
        let reason = DisconnectReason.networkError(description)
        await end(reason)
        return reason
    }

    /// Acknowledges a stanza to the server (it will not deliver it again).
    func ackStanza(_ node: Node) {
        if let ack = Stanzas.ack(for: node) { try? send(ack) }
    }

    /// Waits until no other operation uses the account's Signal state (a receive and a send must not interleave).
    func acquireSignalState() async {
        guard signalStateBusy else {
            signalStateBusy = true
            return
        }
        await withCheckedContinuation { signalStateWaiters.append($0) }
    }

    /// Hands the Signal state to the next waiter, or frees it.
    func releaseSignalState() {
        if signalStateWaiters.isEmpty { signalStateBusy = false } else { signalStateWaiters.removeFirst().resume() }
    }
}

extension JID {
    /// True for a sender addressed by LID.
    var isLIDSender: Bool { server == .lid || server == .hostedLID }
}
