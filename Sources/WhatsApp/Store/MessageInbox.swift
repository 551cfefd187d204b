import WABinary

/// Where a client puts the messages and receipts it received, and finds the texts it sent; implemented by the
/// session pool over the durable event log.
public protocol MessageInbox: Sendable {
    /// Stores the message durably and returns once it is stored; a message id stored before is skipped, not an error.
    func store(_ message: ReceivedMessage) async throws
    /// Stores the receipt durably and returns once it is stored; one stored before is skipped.
    func store(_ receipt: ReceivedReceipt) async throws
    /// A text we sent with this id and the chat it went to, while the log holds it (to answer a retry receipt).
    func sentText(id: String) async throws -> (chat: JID, text: String)?
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
