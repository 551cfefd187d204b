import Foundation
import Tenancy
import WABinary
import WhatsApp

/// A tenant's received messages as `message` events in the durable event log (a redelivered id is stored once).
struct EventLogInbox: MessageInbox {
    let tenant: TenantName
    let log: EventLogWriter

    func store(_ message: ReceivedMessage) async throws {
        _ = try await log.append([Self.event(message, of: tenant, at: Date())])
    }

    /// The `message` event: `{"id", "chat", "from", "from_lid", "from_me", "group", "timestamp", "push_name", "type", "text"}`,
    /// and for content wahost does not read, `"type": "unsupported"` with the protobuf field names in `unsupported`.
    static func event(_ message: ReceivedMessage, of tenant: TenantName, at time: Date) -> NewTenantEvent {
        var data: [String: Any] = [
            "id": message.id, "chat": message.chat.description, "from": message.from.description, "from_me": message.fromMe,
            "group": message.isGroup, "timestamp": message.timestamp, "type": message.kind,
        ]
        data["from_lid"] = message.fromLID?.description ?? NSNull()
        data["push_name"] = message.pushName ?? NSNull()
        data["text"] = message.text ?? NSNull()
        if message.text == nil { data["unsupported"] = message.unsupported }
        let json = (try? JSONSerialization.data(withJSONObject: data, options: [.sortedKeys])).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        return NewTenantEvent(tenant: tenant, type: "message", at: time, data: json, dedupeKey: "message:\(message.id)")
    }
}
