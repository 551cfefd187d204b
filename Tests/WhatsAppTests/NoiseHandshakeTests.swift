import Crypto
import Foundation
import SwiftProtobuf
import Testing
import WAProto
import WhatsAppServerSide

@testable import WhatsApp

/// A client and our responder wired to one certificate chain.
private struct Fixture {
    var builder = CertificateChainBuilder()
    let serverStatic = Curve25519KeyPair.generate()
    let clientStatic = Curve25519KeyPair.generate()
    let now = Date(timeIntervalSince1970: 1_750_000_000)
    var rootKey: [UInt8] { builder.root.publicKey }

    init(validity: Bool = true) {
        if validity {
            builder.intermediateValidity = 1_700_000_000...1_800_000_000
            builder.leafValidity = 1_740_000_000...1_760_000_000
        }
    }

    func client(rootKey: [UInt8]? = nil) throws -> NoiseHandshake {
        try NoiseHandshake(
            configuration: .init(rootPublicKey: rootKey ?? self.rootKey), staticKeyPair: clientStatic)
    }

    func responder(chain: [UInt8]? = nil, leafKey: [UInt8]? = nil) throws -> NoiseResponder {
        let certificates = try chain ?? builder.build(leafKey: leafKey ?? serverStatic.publicKey)
        return NoiseResponder(staticKeyPair: serverStatic, certificateChain: certificates)
    }

    /// Runs the client up to the ServerHello produced by `responder`; returns both and the ServerHello bytes.
    func exchangeHellos(
        client: inout NoiseHandshake, responder: inout NoiseResponder
    ) throws -> [UInt8] {
        let hello = try client.makeClientHello()
        return try responder.receiveClientHello(hello)
    }

    /// The client's error for a ServerHello from `responder` (after `mutate`), or nil when it succeeds.
    func clientError(
        rootKey: [UInt8]? = nil, responder: NoiseResponder? = nil, at time: Date? = nil,
        mutate: (inout Wa_HandshakeMessage) -> Void = { _ in }
    ) throws -> NoiseHandshakeError? {
        var client = try client(rootKey: rootKey)
        var server = try responder ?? self.responder()
        var message = try Wa_HandshakeMessage(serializedBytes: exchangeHellos(client: &client, responder: &server))
        mutate(&message)
        do {
            _ = try client.receiveServerHello(try message.serializedBytes(), clientPayload: [1, 2, 3], now: time ?? now)
            return nil
        } catch let error as NoiseHandshakeError {
            // A failed handshake refuses to continue.
            #expect(throws: NoiseHandshakeError.outOfOrder) { try client.receiveServerHello([], clientPayload: [], now: now) }
            return error
        }
    }
}

private func flip(_ data: inout Data, bit: Int) {
    var bytes = Array(data)
    bytes[bit / 8] ^= UInt8(1) << UInt8(bit % 8)
    data = Data(bytes)
}

@Suite struct NoiseHandshakeTests {
    @Test func hashAfterPrologueMatchesVector() throws {
        let client = try Fixture().client()
        #expect(hexOf(client.handshakeHash) == "ffff0c9267310966f1311170c04b38c79504285bf5edf763e5c946492a50a755")
        #expect(hexOf(NoiseHandshake.protocolName) == "4e6f6973655f58585f32353531395f41455347434d5f53484132353600000000")
    }

    @Test func clientHelloWireLayout() throws {
        let ephemeral = Curve25519KeyPair.generate()
        var client = try NoiseHandshake(
            configuration: .init(rootPublicKey: Fixture().rootKey), staticKeyPair: .generate(), ephemeralKeyPair: ephemeral)
        let hello = try client.makeClientHello()
        #expect(hello == [0x12, 0x22, 0x0A, 0x20] + ephemeral.publicKey)
        #expect(throws: NoiseHandshakeError.outOfOrder) { try client.makeClientHello() }
    }

    @Test func fullHandshakeWithOurResponder() throws {
        let fixture = Fixture()
        var client = try fixture.client()
        var server = try fixture.responder()
        let serverHello = try fixture.exchangeHellos(client: &client, responder: &server)
        let payload = Array("client payload".utf8)
        let done = try client.receiveServerHello(serverHello, clientPayload: payload, now: fixture.now)
        #expect(done.serverStaticKey == fixture.serverStatic.publicKey)
        #expect(done.certificateChain.leaf.key == fixture.serverStatic.publicKey)
        #expect(done.certificateChain.intermediate.serial == 1)
        #expect(done.certificateChain.leaf.notAfter == 1_760_000_000)
        let finished = try server.receiveClientFinish(done.clientFinish)
        #expect(finished.clientStaticKey == fixture.clientStatic.publicKey)
        #expect(finished.clientPayload == payload)
        #expect(client.handshakeHash == server.handshakeHash)
        // ClientFinish.static is 48 bytes (32 + tag).
        let finishMessage = try Wa_HandshakeMessage(serializedBytes: done.clientFinish)
        #expect(finishMessage.clientFinish.static.count == 48)

        var clientTransport = done.transport
        var serverTransport = finished.transport
        for round in 0..<5 {
            let down = Array("server frame \(round)".utf8)
            #expect(try clientTransport.decrypt(serverTransport.encrypt(down)) == down)
            let up = Array("client frame \(round)".utf8)
            #expect(try serverTransport.decrypt(clientTransport.encrypt(up)) == up)
        }
        #expect(clientTransport.writeCount == 5 && clientTransport.readCount == 5)
        // After a finished handshake nothing more is accepted.
        #expect(throws: NoiseHandshakeError.outOfOrder) {
            try client.receiveServerHello(serverHello, clientPayload: [], now: fixture.now)
        }
        #expect(throws: NoiseHandshakeError.outOfOrder) { try server.receiveClientFinish(done.clientFinish) }
    }

    @Test func chainWithoutValidityIsAccepted() throws {
        let fixture = Fixture(validity: false)
        #expect(try fixture.clientError() == nil)
    }

    @Test func tamperedServerHelloIsRejected() throws {
        let fixture = Fixture()
        for bit in [0, 77, 255] {
            let error = try fixture.clientError { flip(&$0.serverHello.ephemeral, bit: bit) }
            #expect(error == .staticKeyDecryptionFailed || error == .invalidEphemeralKey, "ephemeral bit \(bit)")
        }
        for bit in [0, 100, 300, 383] {
            #expect(try fixture.clientError { flip(&$0.serverHello.static, bit: bit) } == .staticKeyDecryptionFailed)
        }
        for bit in [0, 64, 500] {
            #expect(try fixture.clientError { flip(&$0.serverHello.payload, bit: bit) } == .payloadDecryptionFailed)
        }
        #expect(try fixture.clientError { $0.serverHello.ephemeral = Data(repeating: 0, count: 32) } == .invalidEphemeralKey)
        #expect(try fixture.clientError { $0.serverHello.ephemeral.removeLast() } == .malformedMessage)
        #expect(try fixture.clientError { $0.serverHello.clearStatic() } == .malformedMessage)
        #expect(try fixture.clientError { $0.serverHello.clearPayload() } == .malformedMessage)
        #expect(try fixture.clientError { $0.clearServerHello() } == .malformedMessage)
    }

    @Test func garbageServerHelloIsAnError() throws {
        let fixture = Fixture()
        let inputs: [[UInt8]] = [[], [0xFF], [0x1A, 0x05, 0x0A], Array(repeating: 0xFF, count: 100), [0x1A, 0x80, 0x80, 0x80, 0x80, 0x10]]
        var generator = SystemRandomNumberGenerator()
        let random = (0..<50).map { _ in (0..<Int.random(in: 0..<200, using: &generator)).map { _ in UInt8.random(in: 0...255) } }
        for input in inputs + random {
            var client = try fixture.client()
            _ = try client.makeClientHello()
            #expect(throws: NoiseHandshakeError.self) { try client.receiveServerHello(input, clientPayload: [], now: fixture.now) }
        }
    }

    @Test func wrongRootKey() throws {
        let fixture = Fixture()
        #expect(try fixture.clientError(rootKey: Curve25519KeyPair.generate().publicKey) == .intermediateSignatureInvalid)
        #expect(throws: NoiseHandshakeError.invalidRootKey) { try fixture.client(rootKey: [1, 2, 3]) }
    }

    @Test func swappedIntermediateAndLeaf() throws {
        let fixture = Fixture()
        var chain = try fixture.builder.makeChain(leafKey: fixture.serverStatic.publicKey)
        (chain.intermediate, chain.leaf) = (chain.leaf, chain.intermediate)
        let responder = try fixture.responder(chain: chain.serializedBytes())
        #expect(try fixture.clientError(responder: responder) == .intermediateSignatureInvalid)
    }

    @Test func leafKeyDiffersFromServerStatic() throws {
        let fixture = Fixture()
        let responder = try fixture.responder(leafKey: Curve25519KeyPair.generate().publicKey)
        #expect(try fixture.clientError(responder: responder) == .leafKeyMismatch)
    }

    @Test func expiryAndSkew() throws {
        let fixture = Fixture()
        // Leaf valid 1_740_000_000...1_760_000_000, intermediate 1_700_000_000...1_800_000_000, skew 300 s.
        func at(_ seconds: TimeInterval) throws -> NoiseHandshakeError? {
            try fixture.clientError(at: Date(timeIntervalSince1970: seconds))
        }
        #expect(try at(1_760_000_301) == .leafExpired)
        #expect(try at(1_760_000_299) == nil)
        #expect(try at(1_739_999_699) == .leafNotYetValid)
        #expect(try at(1_739_999_701) == nil)
        var builder = fixture.builder
        builder.intermediateValidity = 1_600_000_000...1_700_000_000
        var expired = fixture
        expired.builder = builder
        #expect(try expired.clientError() == .intermediateExpired)
        builder.intermediateValidity = 1_760_000_000...1_800_000_000
        expired.builder = builder
        #expect(try expired.clientError() == .intermediateNotYetValid)
    }

    @Test func serialLinkage() throws {
        var fixture = Fixture()
        fixture.builder.intermediateIssuerSerial = 7
        #expect(try fixture.clientError() == .intermediateIssuerSerialInvalid)
        fixture = Fixture()
        fixture.builder.leafIssuerSerial = 99
        #expect(try fixture.clientError() == .leafIssuerSerialMismatch)
    }

    @Test func leafSignedByAnotherKey() throws {
        let fixture = Fixture()
        var chain = try fixture.builder.makeChain(leafKey: fixture.serverStatic.publicKey)
        chain.leaf.signature = Data(try Curve25519KeyPair.generate().sign(Array(chain.leaf.details)))
        #expect(try fixture.clientError(responder: fixture.responder(chain: chain.serializedBytes())) == .leafSignatureInvalid)
    }

    @Test func malformedChains() throws {
        let fixture = Fixture()
        let good = try fixture.builder.makeChain(leafKey: fixture.serverStatic.publicKey)
        func error(_ edit: (inout Wa_CertChain) throws -> Void) throws -> NoiseHandshakeError? {
            var chain = good
            try edit(&chain)
            return try fixture.clientError(responder: fixture.responder(chain: chain.serializedBytes()))
        }
        #expect(try error { $0.clearLeaf() } == .certificateMissing)
        #expect(try error { $0.intermediate.clearSignature() } == .certificateMissing)
        #expect(try error { $0.leaf.signature.removeLast() } == .certificateSignatureLength)
        #expect(try fixture.clientError(responder: fixture.responder(chain: [0xFF, 0xFF])) == .certificateChainMalformed)
        // An intermediate whose key is not 32 bytes, properly signed by the root.
        #expect(
            try error { chain in
                let details = try CertificateChainBuilder.details(serial: 1, issuerSerial: 0, key: [1, 2, 3], validity: nil)
                chain.intermediate.details = Data(details)
                chain.intermediate.signature = Data(try fixture.builder.root.sign(details))
            } == .intermediateKeyInvalid)
        // Intermediate details that are not a Details message, properly signed.
        #expect(
            try error { chain in
                let details: [UInt8] = [0xFF, 0xFF, 0xFF]
                chain.intermediate.details = Data(details)
                chain.intermediate.signature = Data(try fixture.builder.root.sign(details))
            } == .intermediateDetailsMalformed)
    }

    @Test func responderRejectsBadClientFinish() throws {
        let fixture = Fixture()
        var client = try fixture.client()
        var server = try fixture.responder()
        let serverHello = try fixture.exchangeHellos(client: &client, responder: &server)
        let done = try client.receiveServerHello(serverHello, clientPayload: [9], now: fixture.now)
        var message = try Wa_HandshakeMessage(serializedBytes: done.clientFinish)
        flip(&message.clientFinish.payload, bit: 3)
        #expect(throws: NoiseHandshakeError.payloadDecryptionFailed) { try server.receiveClientFinish(message.serializedBytes()) }
        var other = try fixture.responder()
        #expect(throws: NoiseHandshakeError.outOfOrder) { try other.receiveClientFinish(done.clientFinish) }
        #expect(throws: NoiseHandshakeError.malformedMessage) { try other.receiveClientHello([0x01]) }
    }
}

@Suite struct NoiseTransportTests {
    @Test func independentCountersAndIVLayout() throws {
        let key = [UInt8](repeating: 7, count: 32)
        let other = [UInt8](repeating: 9, count: 32)
        var alice = try NoiseTransport(writeKey: key, readKey: other)
        var bob = try NoiseTransport(writeKey: other, readKey: key)
        let first = try alice.encrypt([1, 2, 3])
        let second = try alice.encrypt([1, 2, 3])
        #expect(first != second)
        #expect(first.count == 3 + 16)
        // IV = 8 zero bytes + BE counter, empty AD.
        let expected = try NoiseCipher.seal([1, 2, 3], key: .init(data: key), counter: 1, associatedData: [])
        #expect(second == expected)
        #expect(try bob.decrypt(first) == [1, 2, 3])
        #expect(try bob.decrypt(second) == [1, 2, 3])
        // Out-of-order or replayed frames fail, and the read counter still advances.
        #expect(throws: NoiseTransportError.decryptionFailed) { try bob.decrypt(first) }
        #expect(bob.readCount == 3)
        #expect(throws: NoiseTransportError.decryptionFailed) { try bob.decrypt([1, 2]) }
        #expect(throws: NoiseTransportError.invalidKey) { try NoiseTransport(writeKey: [1], readKey: key) }
        #expect(!alice.description.contains("07"))
    }

    @Test func counterExhaustion() throws {
        var transport = try NoiseTransport(writeKey: .init(repeating: 1, count: 32), readKey: .init(repeating: 2, count: 32))
        transport.skipForTesting(write: UInt64(UInt32.max), read: UInt64(UInt32.max) + 1)
        _ = try transport.encrypt([0])  // counter 2^32 - 1 is the last usable one
        #expect(throws: NoiseTransportError.counterExhausted) { try transport.encrypt([0]) }
        #expect(throws: NoiseTransportError.counterExhausted) { try transport.decrypt([0]) }
    }
}
