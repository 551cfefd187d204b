// libFuzzer target for reading incoming messages: bytes decoded as a binary node and read as a `<message>`
// (IncomingMessage), and the same bytes walked as protobuf fields (ProtobufFieldReader, used on decrypted plaintexts).
//
// scripts/fuzz.sh compiles this with the WABinary sources and the two WhatsApp files these types live in (their
// `import WABinary` line removed), into one module. Beyond "no crash, no hang": a message that is read has an id,
// at least one non-empty payload, and a chat and sender of the same account unless it is a group message.

@_cdecl("LLVMFuzzerTestOneInput")
public func incomingMessageFuzzInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    var reader = ProtobufFieldReader(bytes)
    while (try? reader.nextFieldNumber()) ?? nil != nil {}
    guard let node = try? NodeDecoder().decode(bytes), let message = try? IncomingMessage(parsing: node) else { return 0 }
    precondition(!message.id.isEmpty && !message.payloads.isEmpty && message.payloads.allSatisfy { !$0.bytes.isEmpty })
    precondition(message.isGroup || message.chat.user == message.sender.user)
    _ = message.deliveryReceipt
    _ = message.retryReceipt(count: 1, registrationID: 1)
    return 0
}
