import Foundation
import WABinary

/// Where a client puts the messages and receipts it received, and finds the texts it sent; implemented by the
/// session pool over the durable event log.
public protocol MessageInbox: Sendable {
    /// The message as an event of the account's log, for the Signal store to store with the state that decrypted it
    /// (`SignalRecordStore.save(_:with:)`); a message id stored before is skipped, not an error.
    func event(for message: ReceivedMessage) -> InboxEvent
    /// Stores the receipt durably and returns once it is stored; one stored before is skipped.
    func store(_ receipt: ReceivedReceipt) async throws
    /// A text we sent with this id and the chat it went to, while the log holds it (to answer a retry receipt).
    func sentText(id: String) async throws -> (chat: JID, text: String)?
}

/// An event for the account's log, worded by the inbox (`type` `message`, its JSON `data`, the key that drops a
/// redelivery).
public struct InboxEvent: Sendable, Equatable {
    public var type: String
    public var at: Date
    public var data: String
    public var dedupeKey: String?

    public init(type: String, at: Date, data: String, dedupeKey: String?) {
        self.type = type
        self.at = at
        self.data = data
        self.dedupeKey = dedupeKey
    }
}

/// What a client needs to send and receive messages: where the Signal records and the received messages go.
public struct ClientMessaging: Sendable {
    public var signalStore: any SignalRecordStore
    public var inbox: any MessageInbox

    public init(signalStore: any SignalRecordStore, inbox: any MessageInbox) {
        self.signalStore = signalStore
        self.inbox = inbox
    }
}
