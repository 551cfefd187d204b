import Foundation
import SwiftProtobuf
import WABinary
import WAProto

/// The client (initiator) side of WhatsApp's Noise_XX_25519_AESGCM_SHA256 handshake, as a pure state machine.
///
/// It does no I/O and reads no clock: the caller sends the bytes it returns, feeds in what the server sent and
/// passes the current time. Order of use (docs/protocol-notes.md#noise-handshake):
/// 1. ``makeClientHello()`` → send `header || frame(bytes)` (the header only on this first frame);
/// 2. ``receiveServerHello(_:clientPayload:now:)`` with the next frame → send `frame(clientFinish)` and switch
///    to the returned ``NoiseTransport``.
/// Any failure is final: the state machine refuses further input and no transport is ever produced.
public struct NoiseHandshake: Sendable, CustomStringConvertible {
    /// The connection header `57 41 06 03` ("WA", protocol 6, dictionary 3), used as the Noise prologue.
    public static let whatsAppHeader: [UInt8] = FrameEncoder.connectionHeader
    /// `Noise_XX_25519_AESGCM_SHA256` padded with zeros to 32 bytes; used directly as `h` and `ck`.
    public static let protocolName: [UInt8] = Array("Noise_XX_25519_AESGCM_SHA256".utf8) + [0, 0, 0, 0]

    /// What a client handshake checks the server against.
    public struct Configuration: Sendable {
        /// The 32-byte X25519 root key that must sign the intermediate certificate.
        public var rootPublicKey: [UInt8]
        /// The connection header, mixed in as the prologue.
        public var header: [UInt8]
        /// Seconds by which certificate validity bounds may be missed (clock skew).
        public var clockSkewTolerance: UInt64

        /// Creates a configuration; WhatsApp's header and five minutes of skew by default.
        public init(rootPublicKey: [UInt8], header: [UInt8] = NoiseHandshake.whatsAppHeader, clockSkewTolerance: UInt64 = 300) {
            self.rootPublicKey = rootPublicKey
            self.header = header
            self.clockSkewTolerance = clockSkewTolerance
        }
    }

    /// The result of a successful handshake.
    public struct Completion: Sendable {
        /// The serialized `HandshakeMessage{clientFinish}` to send (framed, without header).
        public let clientFinish: [UInt8]
        /// The transport keys; the next server frame is read with counter 0.
        public let transport: NoiseTransport
        /// The server's static key (the verified leaf key).
        public let serverStaticKey: [UInt8]
        /// The verified certificate chain.
        public let certificateChain: NoiseCertificateChain
    }

    private enum State: Sendable {
        case initial
        case awaitingServerHello
        case finished
        case failed
    }

    private let configuration: Configuration
    private let staticKeyPair: Curve25519KeyPair
    private let ephemeralKeyPair: Curve25519KeyPair
    private var symmetric: NoiseSymmetricState
    private var state: State = .initial

    /// Prepares a handshake with the long-term Noise key and a fresh (or given, for tests) ephemeral key.
    public init(
        configuration: Configuration, staticKeyPair: Curve25519KeyPair, ephemeralKeyPair: Curve25519KeyPair = .generate()
    ) throws(NoiseHandshakeError) {
        guard configuration.rootPublicKey.count == 32 else { throw .invalidRootKey }
        self.configuration = configuration
        self.staticKeyPair = staticKeyPair
        self.ephemeralKeyPair = ephemeralKeyPair
        self.symmetric = NoiseSymmetricState(protocolName: Self.protocolName, prologue: configuration.header)
    }

    /// The current handshake hash `h` (public transcript data, useful for tests and channel binding).
    public var handshakeHash: [UInt8] { symmetric.hash }

    /// Shows the step only; keys and chaining state never appear.
    public var description: String { "NoiseHandshake(\(state))" }

    /// Step 1–3: mixes in the ephemeral key and returns the serialized `HandshakeMessage{clientHello}`.
    public mutating func makeClientHello() throws(NoiseHandshakeError) -> [UInt8] {
        guard case .initial = state else { throw .outOfOrder }
        state = .failed
        symmetric.mixHash(ephemeralKeyPair.publicKey)
        var message = Wa_HandshakeMessage()
        message.clientHello.ephemeral = Data(ephemeralKeyPair.publicKey)
        let bytes = try message.handshakeBytes()
        state = .awaitingServerHello
        return bytes
    }

    /// Steps 4–14: processes the server's `HandshakeMessage{serverHello}`, verifies the certificate chain at `now`,
    /// and encrypts our static key and `clientPayload` (serialized ClientPayload) into the ClientFinish.
    public mutating func receiveServerHello(
        _ message: [UInt8], clientPayload: [UInt8], now: Date
    ) throws(NoiseHandshakeError) -> Completion {
        guard case .awaitingServerHello = state else { throw .outOfOrder }
        state = .failed
        guard let decoded = try? Wa_HandshakeMessage(serializedBytes: message), decoded.hasServerHello else {
            throw .malformedMessage
        }
        let hello = decoded.serverHello
        guard hello.hasEphemeral, hello.ephemeral.count == 32, hello.hasStatic, hello.hasPayload else {
            throw .malformedMessage
        }
        let serverEphemeral = Array(hello.ephemeral)

        symmetric.mixHash(serverEphemeral)
        symmetric.mixKey(try ephemeralKeyPair.agree(with: serverEphemeral, or: .invalidEphemeralKey))  // ee
        guard let serverStatic = symmetric.decryptAndHash(Array(hello.static)) else { throw .staticKeyDecryptionFailed }
        guard serverStatic.count == 32 else { throw .invalidStaticKey }
        symmetric.mixKey(try ephemeralKeyPair.agree(with: serverStatic, or: .invalidStaticKey))  // es
        guard let certificate = symmetric.decryptAndHash(Array(hello.payload)) else { throw .payloadDecryptionFailed }
        let chain = try NoiseCertificateChain.verify(
            certificate, rootPublicKey: configuration.rootPublicKey, serverStaticKey: serverStatic, now: now,
            clockSkewTolerance: configuration.clockSkewTolerance)

        let encryptedStatic = try symmetric.encryptAndHash(staticKeyPair.publicKey)
        symmetric.mixKey(try staticKeyPair.agree(with: serverEphemeral, or: .invalidEphemeralKey))  // se
        let encryptedPayload = try symmetric.encryptAndHash(clientPayload)

        var finish = Wa_HandshakeMessage()
        finish.clientFinish.static = Data(encryptedStatic)
        finish.clientFinish.payload = Data(encryptedPayload)
        let bytes = try finish.handshakeBytes()
        let keys = symmetric.split()
        state = .finished
        return Completion(
            clientFinish: bytes,
            transport: NoiseTransport(writeKey: keys.initiatorToResponder, readKey: keys.responderToInitiator),
            serverStaticKey: serverStatic, certificateChain: chain)
    }
}

/// Why a Noise handshake failed; each certificate check has its own case.
public struct NoiseHandshakeError: Error, Equatable, CustomStringConvertible {
    private enum Code: Equatable {
        case outOfOrder, internalFailure, invalidRootKey, malformedMessage
        case invalidEphemeralKey, staticKeyDecryptionFailed, invalidStaticKey, payloadDecryptionFailed
        case certificateChainMalformed, certificateMissing, certificateSignatureLength
        case intermediateSignatureInvalid, intermediateDetailsMalformed, intermediateIssuerSerialInvalid
        case intermediateKeyInvalid, leafSignatureInvalid, intermediateNotYetValid, intermediateExpired
        case leafDetailsMalformed, leafIssuerSerialMismatch, leafKeyMismatch, leafNotYetValid, leafExpired
    }

    private let code: Code
    private init(_ code: Code) { self.code = code }

    /// A step was called in the wrong order, or after the handshake failed or finished.
    public static let outOfOrder = NoiseHandshakeError(.outOfOrder)
    /// Encryption or encoding failed unexpectedly.
    public static let internalFailure = NoiseHandshakeError(.internalFailure)
    /// The configured root key is not 32 bytes.
    public static let invalidRootKey = NoiseHandshakeError(.invalidRootKey)
    /// The peer's message is not a HandshakeMessage of the expected kind, or lacks a required part.
    public static let malformedMessage = NoiseHandshakeError(.malformedMessage)
    /// Key agreement with the peer's ephemeral key failed (for example a low-order point).
    public static let invalidEphemeralKey = NoiseHandshakeError(.invalidEphemeralKey)
    /// The encrypted static key failed authentication.
    public static let staticKeyDecryptionFailed = NoiseHandshakeError(.staticKeyDecryptionFailed)
    /// The decrypted static key is not a usable 32-byte key.
    public static let invalidStaticKey = NoiseHandshakeError(.invalidStaticKey)
    /// The encrypted payload (certificate chain or ClientPayload) failed authentication.
    public static let payloadDecryptionFailed = NoiseHandshakeError(.payloadDecryptionFailed)
    /// The decrypted payload is not a CertChain protobuf.
    public static let certificateChainMalformed = NoiseHandshakeError(.certificateChainMalformed)
    /// Check 1: a certificate's details or signature is missing.
    public static let certificateMissing = NoiseHandshakeError(.certificateMissing)
    /// Check 1: a certificate signature is not 64 bytes.
    public static let certificateSignatureLength = NoiseHandshakeError(.certificateSignatureLength)
    /// Check 2: the intermediate certificate is not signed by the root key.
    public static let intermediateSignatureInvalid = NoiseHandshakeError(.intermediateSignatureInvalid)
    /// Check 3: the intermediate details do not decode.
    public static let intermediateDetailsMalformed = NoiseHandshakeError(.intermediateDetailsMalformed)
    /// Check 3: the intermediate's issuer serial is not 0 (the root).
    public static let intermediateIssuerSerialInvalid = NoiseHandshakeError(.intermediateIssuerSerialInvalid)
    /// Check 3: the intermediate key is not 32 bytes.
    public static let intermediateKeyInvalid = NoiseHandshakeError(.intermediateKeyInvalid)
    /// Check 4: the leaf certificate is not signed by the intermediate key.
    public static let leafSignatureInvalid = NoiseHandshakeError(.leafSignatureInvalid)
    /// Check 5: the intermediate certificate's notBefore is in the future.
    public static let intermediateNotYetValid = NoiseHandshakeError(.intermediateNotYetValid)
    /// Check 5: the intermediate certificate's notAfter has passed.
    public static let intermediateExpired = NoiseHandshakeError(.intermediateExpired)
    /// Check 6: the leaf details do not decode.
    public static let leafDetailsMalformed = NoiseHandshakeError(.leafDetailsMalformed)
    /// Check 6: the leaf's issuer serial is not the intermediate's serial.
    public static let leafIssuerSerialMismatch = NoiseHandshakeError(.leafIssuerSerialMismatch)
    /// Check 7: the leaf key is not the server's static key.
    public static let leafKeyMismatch = NoiseHandshakeError(.leafKeyMismatch)
    /// Check 8: the leaf certificate's notBefore is in the future.
    public static let leafNotYetValid = NoiseHandshakeError(.leafNotYetValid)
    /// Check 8: the leaf certificate's notAfter has passed.
    public static let leafExpired = NoiseHandshakeError(.leafExpired)

    /// Whether the failure is one of the certificate-chain checks of docs/protocol-notes.md#noise-certificate-chain.
    public var isCertificateFailure: Bool {
        switch code {
        case .certificateChainMalformed, .certificateMissing, .certificateSignatureLength, .intermediateSignatureInvalid,
            .intermediateDetailsMalformed, .intermediateIssuerSerialInvalid, .intermediateKeyInvalid, .leafSignatureInvalid,
            .intermediateNotYetValid, .intermediateExpired, .leafDetailsMalformed, .leafIssuerSerialMismatch, .leafKeyMismatch,
            .leafNotYetValid, .leafExpired:
            true
        default:
            false
        }
    }

    public var description: String {
        switch code {
        case .outOfOrder: "noise handshake step out of order"
        case .internalFailure: "noise handshake internal failure"
        case .invalidRootKey: "configured certificate root key is not 32 bytes"
        case .malformedMessage: "malformed handshake message"
        case .invalidEphemeralKey: "key agreement with the peer's ephemeral key failed"
        case .staticKeyDecryptionFailed: "peer static key failed to decrypt"
        case .invalidStaticKey: "peer static key is not a usable 32-byte key"
        case .payloadDecryptionFailed: "handshake payload failed to decrypt"
        case .certificateChainMalformed: "certificate chain: not a CertChain"
        case .certificateMissing: "certificate chain: details or signature missing (check 1)"
        case .certificateSignatureLength: "certificate chain: signature is not 64 bytes (check 1)"
        case .intermediateSignatureInvalid: "certificate chain: intermediate not signed by the root key (check 2)"
        case .intermediateDetailsMalformed: "certificate chain: intermediate details malformed (check 3)"
        case .intermediateIssuerSerialInvalid: "certificate chain: intermediate issuer serial is not 0 (check 3)"
        case .intermediateKeyInvalid: "certificate chain: intermediate key is not 32 bytes (check 3)"
        case .leafSignatureInvalid: "certificate chain: leaf not signed by the intermediate key (check 4)"
        case .intermediateNotYetValid: "certificate chain: intermediate not yet valid (check 5)"
        case .intermediateExpired: "certificate chain: intermediate expired (check 5)"
        case .leafDetailsMalformed: "certificate chain: leaf details malformed (check 6)"
        case .leafIssuerSerialMismatch: "certificate chain: leaf issuer serial is not the intermediate serial (check 6)"
        case .leafKeyMismatch: "certificate chain: leaf key is not the server static key (check 7)"
        case .leafNotYetValid: "certificate chain: leaf not yet valid (check 8)"
        case .leafExpired: "certificate chain: leaf expired (check 8)"
        }
    }
}
