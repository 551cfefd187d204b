import Foundation
import Logging
import WABinary

/// Receipts for what we sent: delivered/read/played stored as events before the ack; a retry receipt answered by
/// encrypting the text again for that device on a fresh session.
extension WhatsAppClient {
    /// Handles one `<receipt>`; returns a reason when the connection must end (the log is away: no ack, redelivery).
    func receiveReceipt(_ node: Node) async -> DisconnectReason? {
        guard let messaging else {
            ackStanza(node)
            return nil
        }
        if node.attributes["type"]?.string == "retry" {
            // Off the read loop: answering fetches a bundle, whose answer the read loop has to deliver. A few at a time:
            // receipts come from the network, and a flood of them must not become a flood of tasks.
            if retriesInFlight < Self.retriesInFlightLimit {
                retriesInFlight += 1
                Task { [weak self] in
                    await self?.answerRetry(node, messaging: messaging)
                    await self?.retryEnded()
                }
            } else {
                logger.warning("retry receipt dropped: too many being answered", metadata: ["id": "\(node.attributes["id"]?.string ?? "")"])
            }
            ackStanza(node)
            return nil
        }
        let receipt: ReceivedReceipt?
        do { receipt = try ReceivedReceipt(parsing: node) } catch {
            logger.warning("unreadable receipt acked", metadata: ["error": "\(error)"])
            ackStanza(node)
            return nil
        }
        if let receipt {
            do { try await messaging.inbox.store(receipt) } catch {
                return await storesUnavailable("the receipt cannot be stored: \(error)")
            }
        }
        ackStanza(node)
        return nil
    }

    /// A device could not decrypt our message: encrypt the text again for that device alone, on a fresh session. Only
    /// for a device of the chat the message went to (or our own), and at most `maximumRetries` times per message and
    /// device, counted here (the receipt's own count is the sender's word).
    private func answerRetry(_ node: Node, messaging: ClientMessaging) async {
        guard let id = node.attributes["id"]?.string, let from = node.attributes["from"]?.jid, let account = credentials?.pairedAccount,
            let credentials, let number = connection?.number
        else { return }
        let device = node.attributes["participant"]?.jid ?? from
        let attempt = "\(id)|\(device)"
        guard retryAnswers[attempt, default: 0] < Self.maximumRetries else {
            logger.warning("retry receipt over the limit ignored", metadata: ["id": "\(id)"])
            return
        }
        do {
            var sent = recentSends.last { $0.id == id }.map { (chat: $0.chat, text: $0.text) }
            if sent == nil { sent = try await messaging.inbox.sentText(id: id) }
            guard let (chat, text) = sent else {
                logger.info("retry receipt for a message no longer in the log", metadata: ["id": "\(id)"])
                return
            }
            let own = device.user == account.jid.user && device.server == account.jid.server
            let ofTheChat = chat.isGroup ? from == chat && sendCaches.members(of: chat)?.contains(device.withoutDevice) != false : from.withoutDevice == chat
            guard own || ofTheChat else {
                logger.warning("retry receipt from outside the message's chat ignored", metadata: ["id": "\(id)"])
                return
            }
            retryAnswers[attempt, default: 0] += 1
            if retryAnswers.count > Self.retryAnswerLimit { retryAnswers = [attempt: retryAnswers[attempt] ?? 1] }
            // The bundle request before the Signal state is taken: its answer comes through the read loop.
            let bundles = try await preKeyBundles(for: [device])
            guard bundles[device] != nil else { return }
            await acquireSignalState()
            defer { releaseSignalState() }
            var records = SignalRecords(identity: credentials.identityKey, registrationID: credentials.registrationID, signedPreKey: credentials.signedPreKey)
            records.merge(loaded: try await loadSignalRecords([.identity(device.signalAddress)], from: messaging.signalStore))
            let signal = try SignalProtocol(records: records)
            var generator = SystemRandomNumberGenerator()
            let payloads = try OutboundEncryption.oneToOne(
                text, to: chat, recipientDevices: own ? [] : [device], ownDevices: own ? [device] : [], bundles: bundles, with: signal, using: &generator)
            try await saveSignalState(signal.records.pendingRecordChanges, to: messaging.signalStore)
            var resend = MessageStanzas.fanOut(id: id, to: chat, payloads: payloads, deviceIdentity: account.account)
            resend.attributes.append(Attribute(key: "device_fanout", value: "false"))
            guard connection?.number == number else { return }
            try send(resend)
            logger.info("message encrypted again after a retry receipt", metadata: ["id": "\(id)"])
        } catch {
            logger.warning("retry receipt not answered", metadata: ["id": "\(id)", "error": "\(error)"])
        }
    }

    func retryEnded() { retriesInFlight -= 1 }

    /// Retry receipts being answered at once, and the (message, device) pairs whose answers are counted.
    static var retriesInFlightLimit: Int { 4 }
    static var retryAnswerLimit: Int { 256 }

    /// Retry receipts answered per message and device (whatsmeow and Baileys stop at 5 as well).
    static var maximumRetries: Int { 5 }
}
