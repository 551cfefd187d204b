import Foundation
import Tenancy
import WABinary
import WahostBasics
import WhatsApp

/// A tenant's received messages as `message` events in the durable event log (a redelivered id is stored once).
struct EventLogInbox: MessageInbox {
    let tenant: TenantName
    let log: EventLogWriter

    func event(for message: ReceivedMessage) -> InboxEvent {
        let event = Self.event(message, of: tenant, at: Date())
        return InboxEvent(type: event.type, at: event.at, data: event.data, dedupeKey: event.dedupeKey)
    }

    func store(_ receipt: ReceivedReceipt) async throws {
        _ = try await log.append([Self.event(receipt, of: tenant, at: Date())])
    }

    func sentText(id: String) async throws -> (chat: JID, text: String)? {
        guard let sent = try await Self.sentThroughAPI(id, of: tenant, in: log), let chat = try? JID(parsing: sent.chat), let text = sent.text
        else { return nil }
        return (chat, text)
    }

    /// The message this tenant sent through the API with this id, read back from its `from_me` event, if the log holds it.
    static func sentThroughAPI(_ id: String, of tenant: TenantName, in log: EventLogWriter) async throws(RepositoryError)
        -> (chat: String, text: String?, timestamp: UInt64)?
    {
        guard let stored = try await log.event(of: tenant, dedupeKey: "message:\(id)"),
            let object = try? JSONSerialization.jsonObject(with: Data(stored.data.utf8)) as? [String: Any],
            object["from_me"] as? Bool == true, let chat = object["chat"] as? String
        else { return nil }
        return (chat, object["text"] as? String, (object["timestamp"] as? NSNumber)?.uint64Value ?? 0)
    }

    /// The `receipt` event: `{"ids", "chat", "from", "type": "delivered"|"read"|"played", "timestamp"}`.
    static func event(_ receipt: ReceivedReceipt, of tenant: TenantName, at time: Date) -> NewTenantEvent {
        let json = JSONText.object([
            "chat": .string(receipt.chat.description), "from": .string(receipt.from.description), "ids": .strings(receipt.ids),
            "timestamp": .int(Int(clamping: receipt.timestamp)), "type": .string(receipt.kind.rawValue),
        ])
        let key = "receipt:\(receipt.kind.rawValue):\(receipt.from):\(receipt.ids[0])"
        return NewTenantEvent(tenant: tenant, type: "receipt", at: time, data: json, dedupeKey: key)
    }

    /// The `message` event: `{"id", "chat", "from", "from_lid", "from_me", "group", "timestamp", "push_name", "type", "text"}`,
    /// and for content wahost does not read, `"type": "unsupported"` with the protobuf field names in `unsupported`.
    /// A received message is deduplicated by its sender and id (ids are the sender's choice), one sent through the
    /// API by its id alone (the idempotency lookup and retry receipts find it by id).
    static func event(_ message: ReceivedMessage, of tenant: TenantName, at time: Date, sentByAPI: Bool = false) -> NewTenantEvent {
        let json =
            message.text != nil
            ? JSONText.object([
                "chat": .string(message.chat.description), "from": .string(message.from.description), "from_lid": .string(message.fromLID?.description),
                "from_me": .bool(message.fromMe), "group": .bool(message.isGroup), "id": .string(message.id), "push_name": .string(message.pushName),
                "text": .string(message.text), "timestamp": .int(Int(clamping: message.timestamp)), "type": .string(message.kind),
            ])
            : JSONText.object([
                "chat": .string(message.chat.description), "from": .string(message.from.description), "from_lid": .string(message.fromLID?.description),
                "from_me": .bool(message.fromMe), "group": .bool(message.isGroup), "id": .string(message.id), "push_name": .string(message.pushName),
                "text": .string(nil), "timestamp": .int(Int(clamping: message.timestamp)), "type": .string(message.kind),
                "unsupported": .strings(message.unsupported),
            ])
        let key = sentByAPI ? "message:\(message.id)" : "message:\(message.fromLID ?? message.from):\(message.id)"
        return NewTenantEvent(tenant: tenant, type: "message", at: time, data: json, dedupeKey: key)
    }
}
