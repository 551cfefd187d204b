import ArgumentParser
import Foundation
import WABinary
import WhatsApp
import WhatsAppServerSide

/// In-process micro-benchmarks: binary node encode/decode throughput and Noise handshakes per second on one core.
struct Micro: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Node codec throughput and Noise XX handshakes per second (one core).")

    @Option(help: "Seconds to spend on each measurement.") var seconds: Double = 3

    func run() throws {
        var results: [String: Any] = ["benchmark": "micro", "cores_used": 1]
        for (name, node) in [("ping", Self.ping), ("group_list", Self.groupList)] {
            let encoder = NodeEncoder()
            let decoder = NodeDecoder()
            let bytes = try encoder.encode(node)
            var count = 0
            let encodeTime = try measureFor(seconds) {
                for _ in 0..<100 { _ = try encoder.encode(node) }
                count += 100
            }
            let encodeRate = Double(count) / encodeTime
            count = 0
            let decodeTime = try measureFor(seconds) {
                for _ in 0..<100 { _ = try decoder.decode(bytes) }
                count += 100
            }
            let decodeRate = Double(count) / decodeTime
            results["\(name)_bytes"] = bytes.count
            results["\(name)_encode_per_second"] = Int(encodeRate)
            results["\(name)_decode_per_second"] = Int(decodeRate)
            results["\(name)_encode_mib_per_second"] = (encodeRate * Double(bytes.count) / 1_048_576 * 10).rounded() / 10
            results["\(name)_decode_mib_per_second"] = (decodeRate * Double(bytes.count) / 1_048_576 * 10).rounded() / 10
        }

        // Both sides of a full XX handshake with certificate-chain checks, as a client and the simulator do it.
        let builder = CertificateChainBuilder()
        let serverStatic = Curve25519KeyPair.generate()
        let chain = try builder.build(leafKey: serverStatic.publicKey)
        let clientStatic = Curve25519KeyPair.generate()
        let payload = [UInt8](repeating: 7, count: 120)
        var handshakes = 0
        let handshakeTime = try measureFor(seconds) {
            var client = try NoiseHandshake(configuration: .init(rootPublicKey: builder.root.publicKey), staticKeyPair: clientStatic)
            var server = NoiseResponder(staticKeyPair: serverStatic, certificateChain: chain)
            let serverHello = try server.receiveClientHello(try client.makeClientHello())
            let done = try client.receiveServerHello(serverHello, clientPayload: payload, now: Date())
            _ = try server.receiveClientFinish(done.clientFinish)
            handshakes += 1
        }
        results["handshakes_per_second_both_sides"] = Int(Double(handshakes) / handshakeTime)
        printJSONLine(results)
    }

    /// Runs `body` repeatedly for at least `seconds`; returns the time taken.
    private func measureFor(_ seconds: Double, _ body: () throws -> Void) throws -> Double {
        try body()  // warm-up
        var elapsed = 0.0
        while elapsed < seconds { elapsed += try measure(body) }
        return elapsed
    }

    /// The keepalive ping: the most frequent stanza.
    static let ping = Node(
        tag: "iq", attributes: ["id": "148.54-3", "to": .jid(.whatsappServer), "type": "get", "xmlns": "w:p"])

    /// A group listing answer with 50 groups of 20 participants each.
    static let groupList: Node = {
        let groups = (0..<50).map { index in
            Node(
                tag: "group",
                attributes: ["id": .string("1203630252461\(10000 + index)"), "subject": .string("Group number \(index)"), "s_t": "1700000000"],
                children: (0..<20).map { member in
                    Node(tag: "participant", attributes: ["jid": .jid(.phoneNumber("1555\(1_000_000 + index * 20 + member)", device: 0))])
                })
        }
        return Node(
            tag: "iq", attributes: ["from": .jid(.groupServer), "id": "148.54-7", "type": "result"],
            children: [Node(tag: "groups", children: groups)])
    }()
}
