import Foundation
import SwiftProtobuf
import WAProto
import WhatsApp

/// The server (responder) side of WhatsApp's Noise XX handshake, for the simulator and tests; a pure state machine.
///
/// 1. ``receiveClientHello(_:)`` with the first frame (after the caller stripped the header) → send the
///    returned ServerHello;
/// 2. ``receiveClientFinish(_:)`` with the next frame → the client's static key, its decrypted payload
///    (a serialized ClientPayload) and the server's ``NoiseTransport``.
/// Any failure is final.
public struct NoiseResponder: Sendable, CustomStringConvertible {
    /// What the responder learned from a completed handshake.
    public struct Completion: Sendable {
        /// The client's long-term Noise public key (32 bytes).
        public let clientStaticKey: [UInt8]
        /// The decrypted ClientFinish payload (a serialized ClientPayload).
        public let clientPayload: [UInt8]
        /// The server's transport: writes with the second half of the split, reads with the first.
        public let transport: NoiseTransport
    }

    private enum State: Sendable {
        case awaitingClientHello
        case awaitingClientFinish
        case finished
        case failed
    }

    private let staticKeyPair: Curve25519KeyPair
    private let ephemeralKeyPair: Curve25519KeyPair
    private let certificateChain: [UInt8]
    private var symmetric: NoiseSymmetricState
    private var state: State = .awaitingClientHello

    /// Prepares a responder with its static key, the serialized CertChain whose leaf certifies it, and the header.
    public init(
        staticKeyPair: Curve25519KeyPair, certificateChain: [UInt8], header: [UInt8] = NoiseHandshake.whatsAppHeader,
        ephemeralKeyPair: Curve25519KeyPair = .generate()
    ) {
        self.staticKeyPair = staticKeyPair
        self.ephemeralKeyPair = ephemeralKeyPair
        self.certificateChain = certificateChain
        self.symmetric = NoiseSymmetricState(protocolName: NoiseHandshake.protocolName, prologue: header)
    }

    /// The current handshake hash `h`.
    public var handshakeHash: [UInt8] { symmetric.hash }

    /// Shows the step only; keys and chaining state never appear.
    public var description: String { "NoiseResponder(\(state))" }

    /// Consumes `HandshakeMessage{clientHello}` and returns the serialized `HandshakeMessage{serverHello}`.
    public mutating func receiveClientHello(_ message: [UInt8]) throws(NoiseHandshakeError) -> [UInt8] {
        guard case .awaitingClientHello = state else { throw .outOfOrder }
        state = .failed
        guard let decoded = try? Wa_HandshakeMessage(serializedBytes: message), decoded.hasClientHello,
            decoded.clientHello.ephemeral.count == 32
        else { throw .malformedMessage }
        let clientEphemeral = Array(decoded.clientHello.ephemeral)

        symmetric.mixHash(clientEphemeral)
        symmetric.mixHash(ephemeralKeyPair.publicKey)
        symmetric.mixKey(try ephemeralKeyPair.agree(with: clientEphemeral, or: .invalidEphemeralKey))  // ee
        let encryptedStatic = try symmetric.encryptAndHash(staticKeyPair.publicKey)
        symmetric.mixKey(try staticKeyPair.agree(with: clientEphemeral, or: .invalidEphemeralKey))  // es
        let encryptedPayload = try symmetric.encryptAndHash(certificateChain)

        var reply = Wa_HandshakeMessage()
        reply.serverHello.ephemeral = Data(ephemeralKeyPair.publicKey)
        reply.serverHello.static = Data(encryptedStatic)
        reply.serverHello.payload = Data(encryptedPayload)
        let bytes = try reply.handshakeBytes()
        state = .awaitingClientFinish
        return bytes
    }

    /// Consumes `HandshakeMessage{clientFinish}`: decrypts the client's static key and payload and splits.
    public mutating func receiveClientFinish(_ message: [UInt8]) throws(NoiseHandshakeError) -> Completion {
        guard case .awaitingClientFinish = state else { throw .outOfOrder }
        state = .failed
        guard let decoded = try? Wa_HandshakeMessage(serializedBytes: message), decoded.hasClientFinish,
            decoded.clientFinish.hasStatic, decoded.clientFinish.hasPayload
        else { throw .malformedMessage }

        guard let clientStatic = symmetric.decryptAndHash(Array(decoded.clientFinish.static)) else {
            throw .staticKeyDecryptionFailed
        }
        guard clientStatic.count == 32 else { throw .invalidStaticKey }
        symmetric.mixKey(try ephemeralKeyPair.agree(with: clientStatic, or: .invalidStaticKey))  // se
        guard let payload = symmetric.decryptAndHash(Array(decoded.clientFinish.payload)) else {
            throw .payloadDecryptionFailed
        }
        let keys = symmetric.split()
        state = .finished
        return Completion(
            clientStaticKey: clientStatic, clientPayload: payload,
            transport: NoiseTransport(writeKey: keys.responderToInitiator, readKey: keys.initiatorToResponder))
    }
}
