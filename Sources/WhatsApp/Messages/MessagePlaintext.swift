import Foundation
import SwiftProtobuf
import WAProto

/// WhatsApp pads every message plaintext before Signal encryption: 1 to 15 bytes, each holding the pad length.
public enum MessagePadding {
    /// `bytes` followed by a random pad.
    public static func pad(_ bytes: [UInt8], using generator: inout some RandomNumberGenerator) -> [UInt8] {
        var length = UInt8.random(in: 0...15, using: &generator)
        if length == 0 { length = 15 }
        return bytes + [UInt8](repeating: length, count: Int(length))
    }

    /// `bytes` without its pad; the last byte says how long the pad is.
    public static func unpad(_ bytes: [UInt8]) throws(MessagePlaintextError) -> [UInt8] {
        guard let length = bytes.last, length > 0, Int(length) <= bytes.count else {
            throw MessagePlaintextError("bad message padding")
        }
        return Array(bytes.dropLast(Int(length)))
    }
}

/// What a decrypted message carries, as wahost reports it.
public struct MessagePlaintext: Sendable, Equatable {
    /// The text of a text message (plain or extended).
    public var text: String?
    /// A sender's key for a group, to store before that sender's `skmsg` can be read.
    public var senderKeyDistribution: (groupID: String, distribution: [UInt8])?
    /// For a copy of our own sent message (from another of our devices): the chat it went to.
    public var sentTo: String?
    /// The content kinds we do not read, by protobuf field name (`imageMessage`, or `field_N` when unknown).
    public var unsupported: [String] = []

    public init(text: String? = nil, senderKeyDistribution: (groupID: String, distribution: [UInt8])? = nil, sentTo: String? = nil) {
        self.text = text
        self.senderKeyDistribution = senderKeyDistribution
        self.sentTo = sentTo
    }

    /// Reads an unpadded plaintext (a `Message` protobuf); a copy sent by our other device is opened.
    public init(decoding bytes: [UInt8]) throws(MessagePlaintextError) {
        let message: Wa_Message
        do { message = try Wa_Message(serializedBytes: bytes) } catch { throw MessagePlaintextError("not a Message protobuf: \(error)") }
        var content = message
        if message.hasDeviceSentMessage, message.deviceSentMessage.hasMessage {
            sentTo = message.deviceSentMessage.destinationJid
            content = message.deviceSentMessage.message
        }
        if content.hasConversation {
            text = content.conversation
        } else if content.hasExtendedTextMessage, content.extendedTextMessage.hasText {
            text = content.extendedTextMessage.text
        }
        if message.hasSenderKeyDistributionMessage {
            let distribution = message.senderKeyDistributionMessage
            senderKeyDistribution = (distribution.groupID, Array(distribution.axolotlSenderKeyDistributionMessage))
        }
        unsupported = try Self.fieldNames(in: Array(content.unknownFields.data))
    }

    /// A text message as a `Message` protobuf (not padded).
    public static func encodeText(_ text: String, senderKeyDistribution: (groupID: String, distribution: [UInt8])? = nil) -> [UInt8] {
        var message = Wa_Message()
        message.conversation = text
        if let (groupID, distribution) = senderKeyDistribution {
            message.senderKeyDistributionMessage.groupID = groupID
            message.senderKeyDistributionMessage.axolotlSenderKeyDistributionMessage = Data(distribution)
        }
        return (try? message.serializedBytes()) ?? []
    }

    /// A message that only hands over our sender key for a group (sent to each member device lacking it).
    public static func encodeSenderKeyDistribution(groupID: String, distribution: [UInt8]) -> [UInt8] {
        var message = Wa_Message()
        message.senderKeyDistributionMessage.groupID = groupID
        message.senderKeyDistributionMessage.axolotlSenderKeyDistributionMessage = Data(distribution)
        return (try? message.serializedBytes()) ?? []
    }

    /// The copy of a sent message for our own other devices.
    public static func encodeDeviceSent(_ inner: [UInt8], destination: String) throws(MessagePlaintextError) -> [UInt8] {
        var message = Wa_Message()
        do {
            message.deviceSentMessage.message = try Wa_Message(serializedBytes: inner)
            message.deviceSentMessage.destinationJid = destination
            return try message.serializedBytes()
        } catch { throw MessagePlaintextError("cannot wrap the message: \(error)") }
    }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.text == rhs.text && lhs.sentTo == rhs.sentTo && lhs.unsupported == rhs.unsupported
            && lhs.senderKeyDistribution?.groupID == rhs.senderKeyDistribution?.groupID
            && lhs.senderKeyDistribution?.distribution == rhs.senderKeyDistribution?.distribution
    }

    /// Names of `Message` content fields (numbers from the public WAE2E schema) that wahost does not read.
    static let knownFieldNames: [UInt64: String] = [
        3: "imageMessage", 4: "contactMessage", 5: "locationMessage", 7: "documentMessage", 8: "audioMessage", 9: "videoMessage",
        12: "protocolMessage", 26: "stickerMessage", 46: "reactionMessage", 49: "pollCreationMessage",
    ]

    /// The field names of protobuf-encoded `fields`, in order, each once.
    static func fieldNames(in fields: [UInt8]) throws(MessagePlaintextError) -> [String] {
        var reader = ProtobufFieldReader(fields)
        var names: [String] = []
        while let number = try reader.nextFieldNumber() {
            let name = knownFieldNames[number] ?? "field_\(number)"
            if !names.contains(name) { names.append(name) }
        }
        return names
    }
}
