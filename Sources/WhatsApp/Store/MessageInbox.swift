/// Where a client puts the messages it received; implemented by the session pool over the durable event log.
public protocol MessageInbox: Sendable {
    /// Stores the message durably and returns once it is stored; a message id stored before is skipped, not an error.
    func store(_ message: ReceivedMessage) async throws
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
