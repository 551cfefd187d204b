import WABinary

/// A message as it was received and read, ready to store as an event.
public struct ReceivedMessage: Sendable, Equatable {
    /// The sender's message id (redeliveries carry the same one).
    public var id: String
    /// The chat: the other account for a 1:1 message (phone-number JID where known), the group for a group message.
    public var chat: JID
    /// The sending account, without device (phone-number JID where known).
    public var from: JID
    /// The sender's LID when the stanza named one.
    public var fromLID: JID?
    /// True when another device of our own account sent it.
    public var fromMe: Bool
    /// Server time, unix seconds.
    public var timestamp: UInt64
    /// The sender's display name, when the server sent it.
    public var pushName: String?
    /// The text, for a text message.
    public var text: String?
    /// The content kinds we do not read, by protobuf field name (`imageMessage`, `field_N`).
    public var unsupported: [String]

    public init(
        id: String, chat: JID, from: JID, fromLID: JID? = nil, fromMe: Bool, timestamp: UInt64, pushName: String? = nil,
        text: String? = nil, unsupported: [String] = []
    ) {
        self.id = id
        self.chat = chat
        self.from = from
        self.fromLID = fromLID
        self.fromMe = fromMe
        self.timestamp = timestamp
        self.pushName = pushName
        self.text = text
        self.unsupported = unsupported
    }

    /// True for a group chat.
    public var isGroup: Bool { chat.isGroup }

    /// `text` for a text message, `unsupported` for any other content.
    public var kind: String { text != nil ? "text" : "unsupported" }

    /// The message as reported: phone-number JIDs where the stanza names them, the LID beside; `account` and
    /// `accountLID` tell our own devices apart.
    public init(_ message: IncomingMessage, content: MessagePlaintext, account: JID, accountLID: JID?) {
        let sender = message.sender.withoutDevice
        let isLID = sender.isLIDSender
        let from = isLID ? (message.senderPhoneNumber?.withoutDevice ?? sender) : sender
        let fromMe = sender.user == account.user && sender.server == account.server || accountLID.map { sender.user == $0.user && isLID } == true
        var chat = message.chat
        if !message.isGroup {
            if fromMe, let sentTo = content.sentTo, let destination = try? JID(parsing: sentTo) {
                chat = destination.withoutDevice
            } else if isLID {
                chat = from
            }
        }
        self.init(
            id: message.id, chat: chat, from: from, fromLID: isLID ? sender : nil, fromMe: fromMe, timestamp: message.timestamp,
            pushName: message.pushName, text: content.text, unsupported: content.unsupported)
    }
}
