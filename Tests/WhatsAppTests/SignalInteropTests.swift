import Foundation
import TestSupport
import Testing

@testable import WhatsApp

/// The python-axolotl peer (Tests/WhatsAppTests/python/signal_peer.py), spoken to in JSON lines.
private final class AxolotlPeer {
    private let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    private var buffered = Data()
    let address: SignalAddress

    init(name: String, device: UInt32) throws {
        address = SignalAddress(name: name, deviceID: device)
        process.executableURL = URL(fileURLWithPath: try requireTestPython())
        process.arguments = [pythonScriptPath("signal_peer.py")]
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.standardError
        try process.run()
    }

    deinit {
        try? input.fileHandleForWriting.close()
        if process.isRunning { process.terminate() }
    }

    var addressJSON: [String: Any] { ["name": address.name, "device": Int(address.deviceID)] }

    /// Sends one request and returns its answer; an `error` answer throws.
    func call(_ request: [String: Any]) throws -> [String: Any] {
        try input.fileHandleForWriting.write(contentsOf: try JSONSerialization.data(withJSONObject: request) + Data([0x0A]))
        while !buffered.contains(0x0A) {
            // `availableData` returns what the pipe holds (`read(upToCount:)` would wait for the whole count).
            let chunk = output.fileHandleForReading.availableData
            guard !chunk.isEmpty else {
                throw TestSupportError("signal_peer.py closed its output")
            }
            buffered += chunk
        }
        let newline = buffered.firstIndex(of: 0x0A)!
        let line = buffered[buffered.startIndex..<newline]
        buffered = Data(buffered[buffered.index(after: newline)...])
        guard let answer = try JSONSerialization.jsonObject(with: line) as? [String: Any] else { throw TestSupportError("not a JSON object") }
        if let error = answer["error"] as? String { throw TestSupportError("signal_peer.py: \(error)") }
        return answer
    }

    func bytes(_ answer: [String: Any], _ key: String) throws -> [UInt8] {
        guard let text = answer[key] as? String, let data = Data(base64Encoded: text) else { throw TestSupportError("no \(key) in \(answer)") }
        return Array(data)
    }
}

private func b64(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }

private func json(_ address: SignalAddress) -> [String: Any] { ["name": address.name, "device": Int(address.deviceID)] }

/// Our libsignal-protocol-c wrapper against python-axolotl, the Python port of libsignal: the same wire formats
/// (PreKeyWhisperMessage, WhisperMessage, SenderKeyDistributionMessage, SenderKeyMessage) from code we did not write.
@Suite(.enabled(if: ExternalTools.pythonEnabled), .serialized) struct SignalInteropTests {
    @Test func weStartTheSessionWithAxolotlsBundleAndRatchetBothWays() throws {
        let ours = try SignalParty("15550000001", device: 3)
        let peer = try AxolotlPeer(name: "15550000002", device: 0)
        let bundle = try peer.call(["op": "init", "name": peer.address.name, "device": Int(peer.address.deviceID)])
        let identity = try peer.bytes(bundle, "identity")
        let preKey = try peer.bytes(bundle, "prekey")
        let signedPreKey = try peer.bytes(bundle, "signed_prekey")
        #expect(identity.count == 33 && identity[0] == 0x05)
        try ours.signal.startSession(
            with: peer.address,
            bundle: SignalPreKeyBundle(
                registrationID: UInt32(bundle["registration_id"] as? Int ?? 0), deviceID: peer.address.deviceID,
                identityKey: Array(identity.dropFirst()), signedPreKeyID: UInt32(bundle["signed_prekey_id"] as? Int ?? 0),
                signedPreKey: Array(signedPreKey.dropFirst()), signedPreKeySignature: try peer.bytes(bundle, "signature"),
                preKey: (UInt32(bundle["prekey_id"] as? Int ?? 0), Array(preKey.dropFirst()))))

        var expectedKind = SignalCiphertext.Kind.preKeyMessage
        for round in 0..<5 {
            let text = Array("from swift \(round)".utf8)
            let sent = try ours.signal.encrypt(text, for: peer.address)
            #expect(sent.kind == expectedKind)
            #expect(sent.bytes.first == 0x33, "version 3 in both halves of the first byte")
            let decrypted = try peer.call([
                "op": "decrypt", "from": json(ours.address), "type": sent.kind.rawValue, "ciphertext": b64(sent.bytes),
            ])
            #expect(try peer.bytes(decrypted, "plaintext") == text)

            let reply = Array("from axolotl \(round)".utf8)
            let answer = try peer.call(["op": "encrypt", "to": json(ours.address), "plaintext": b64(reply)])
            #expect(answer["type"] as? String == "msg")
            let kind = SignalCiphertext.Kind(rawValue: answer["type"] as? String ?? "") ?? .message
            #expect(try ours.signal.decrypt(SignalCiphertext(kind: kind, bytes: try peer.bytes(answer, "ciphertext")), from: peer.address) == reply)
            expectedKind = .message
        }
    }

    @Test func axolotlStartsTheSessionWithOurBundleAndWeAnswer() throws {
        let ours = try SignalParty("15550000003", device: 0)
        let peer = try AxolotlPeer(name: "15550000004", device: 7)
        _ = try peer.call(["op": "init", "name": peer.address.name, "device": Int(peer.address.deviceID)])
        let bundle = ours.bundle(preKeyID: 2)
        _ = try peer.call([
            "op": "process_bundle", "address": json(ours.address), "registration_id": Int(bundle.registrationID),
            "identity": b64([0x05] + bundle.identityKey), "prekey_id": 2, "prekey": b64([0x05] + (bundle.preKey?.publicKey ?? [])),
            "signed_prekey_id": Int(bundle.signedPreKeyID), "signed_prekey": b64([0x05] + bundle.signedPreKey),
            "signature": b64(bundle.signedPreKeySignature),
        ])
        for round in 0..<4 {
            let text = Array("axolotl says \(round)".utf8)
            let sent = try peer.call(["op": "encrypt", "to": json(ours.address), "plaintext": b64(text)])
            let kind = SignalCiphertext.Kind(rawValue: sent["type"] as? String ?? "") ?? .message
            #expect(kind == (round == 0 ? .preKeyMessage : .message))
            #expect(try ours.signal.decrypt(SignalCiphertext(kind: kind, bytes: try peer.bytes(sent, "ciphertext")), from: peer.address) == text)
            if round == 0 { #expect(ours.signal.records.preKeys[2] == nil, "our one-time prekey is used up") }

            let reply = Array("swift answers \(round)".utf8)
            let answer = try ours.signal.encrypt(reply, for: peer.address)
            #expect(answer.kind == .message)
            let decrypted = try peer.call([
                "op": "decrypt", "from": json(ours.address), "type": answer.kind.rawValue, "ciphertext": b64(answer.bytes),
            ])
            #expect(try peer.bytes(decrypted, "plaintext") == reply)
        }
    }

    @Test func senderKeyGroupMessagesBothWays() throws {
        let ours = try SignalParty("15550000005", device: 0)
        let peer = try AxolotlPeer(name: "15550000006", device: 0)
        _ = try peer.call(["op": "init", "name": peer.address.name, "device": Int(peer.address.deviceID)])
        let group = "120363000000000042@g.us"

        // Our sender key, distributed to axolotl, then three messages it decrypts.
        let ourName = SenderKeyName(groupID: group, sender: ours.address)
        _ = try peer.call([
            "op": "group_process_distribution", "group": group, "sender": json(ours.address),
            "message": b64(try ours.signal.senderKeyDistribution(for: ourName)),
        ])
        for index in 0..<3 {
            let text = Array("swift to the group \(index)".utf8)
            let ciphertext = try ours.signal.groupEncrypt(text, as: ourName)
            let decrypted = try peer.call(["op": "group_decrypt", "group": group, "sender": json(ours.address), "ciphertext": b64(ciphertext)])
            #expect(try peer.bytes(decrypted, "plaintext") == text)
        }

        // Axolotl's sender key, distributed to us, then three messages we decrypt.
        let peerName = SenderKeyName(groupID: group, sender: peer.address)
        let distribution = try peer.call(["op": "group_create_distribution", "group": group, "sender": json(peer.address)])
        try ours.signal.processSenderKeyDistribution(try peer.bytes(distribution, "message"), for: peerName)
        for index in 0..<3 {
            let text = Array("axolotl to the group \(index)".utf8)
            let sent = try peer.call(["op": "group_encrypt", "group": group, "sender": json(peer.address), "plaintext": b64(text)])
            #expect(try ours.signal.groupDecrypt(try peer.bytes(sent, "ciphertext"), from: peerName) == text)
        }
    }
}
