import Foundation
import Logging
import Tenancy
import WABinary
import WhatsApp

/// A text the server acknowledged.
public struct SentText: Sendable, Equatable {
    public var id: String
    /// The chat's JID.
    public var to: String
    /// Unix seconds.
    public var timestamp: UInt64
}

extension SessionPool {
    /// Sends a text from the tenant's connected account; with `idempotencyKey`, a key the log already holds returns
    /// the first answer and sends nothing. The message id derives from the key, so a send repeated after a crash
    /// carries the same id and recipients show it once. With `logged` false (a one-time code) the text never enters
    /// the event log, where anyone holding the tenant's token could read it.
    public func sendText(
        _ text: String, to recipient: String, for tenant: TenantName, idempotencyKey: String? = nil, logged: Bool = true
    ) async throws(SessionPoolError) -> SentText {
        let chat = try Self.recipientJID(recipient)
        let messageID = idempotencyKey.map { Self.messageID(tenant: tenant, idempotencyKey: $0) }
        if let messageID, let first = try await sentEarlier(messageID, of: tenant) { return first }
        let client = try connectedClient(of: tenant)
        if let messageID {
            guard sendsInFlight.insert(messageID).inserted else {
                throw SessionPoolError(.idempotencyKeyInUse, "a request with this Idempotency-Key is still in progress")
            }
        }
        defer { if let messageID { sendsInFlight.remove(messageID) } }
        let sent: SentMessage
        do {
            sent = try await client.sendText(text, to: chat, id: messageID)
        } catch let error as WhatsAppClientError {
            if error.isNotConnected { throw notConnected(tenant) }
            if error.isNotOnWhatsApp { throw SessionPoolError(.notOnWhatsApp, "\(error)") }
            if error.isTimeout { throw SessionPoolError(.upstreamTimeout, "WhatsApp did not acknowledge the message in time") }
            throw SessionPoolError(.upstreamUnavailable, "sending failed: \(error)")
        } catch {
            throw SessionPoolError(.unavailable, "sending failed: \(error)")
        }
        let answer = SentText(id: sent.id, to: sent.to.description, timestamp: sent.timestamp)
        guard logged else { return answer }
        let own = await client.accountJID
        let record = ReceivedMessage(
            id: sent.id, chat: sent.to, from: own?.withoutDevice ?? sent.to, fromMe: true, timestamp: sent.timestamp, text: text)
        // The sent message joins the log (`from_me`), which is also where a repeated key finds its first answer.
        do { _ = try await eventLog?.append([EventLogInbox.event(record, of: tenant, at: configuration.clock.now(), sentByAPI: true)]) } catch {
            logger.error("sent message not logged", metadata: ["tenant": "\(tenant)", "error": "\(error)"])
        }
        return answer
    }

    /// A phone number (digits, optional `+`), or a user, LID or group JID.
    static func recipientJID(_ text: String) throws(SessionPoolError) -> JID {
        let trimmed = text.hasPrefix("+") ? String(text.dropFirst()) : text
        if !trimmed.isEmpty, trimmed.count <= 20, trimmed.allSatisfy({ $0.isASCII && $0.isNumber }) { return .phoneNumber(trimmed) }
        guard let jid = try? JID(parsing: text), !jid.user.isEmpty, jid.user.count <= 64,
            [JID.Server.phoneNumber, .lid, .group].contains(jid.server),
            jid.user.allSatisfy({ $0.isASCII && ($0.isNumber || (jid.server == .group && $0 == "-")) })
        else {
            throw SessionPoolError(.invalidRecipient, "'to' must be a phone number or a …@s.whatsapp.net, …@lid or …@g.us JID")
        }
        return jid.withoutDevice
    }

    /// The message id a tenant's idempotency key stands for.
    static func messageID(tenant: TenantName, idempotencyKey: String) -> String {
        MessageStanzas.messageID(derivedFrom: "wahost-idempotency\u{0}\(tenant.rawValue)\u{0}\(idempotencyKey)")
    }

    /// The answer of an earlier send of this message id, from the event log.
    private func sentEarlier(_ messageID: String, of tenant: TenantName) async throws(SessionPoolError) -> SentText? {
        guard let eventLog else { return nil }
        do {
            guard let sent = try await EventLogInbox.sentThroughAPI(messageID, of: tenant, in: eventLog) else { return nil }
            return SentText(id: messageID, to: sent.chat, timestamp: sent.timestamp)
        } catch {
            throw SessionPoolError(.unavailable, "the event log cannot be read: \(error)")
        }
    }
}
