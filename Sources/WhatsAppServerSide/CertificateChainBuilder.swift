import Foundation
import SwiftProtobuf
import WAProto
import WhatsApp

/// Builds a signed Noise certificate chain (root signs the intermediate, intermediate signs the leaf) for the
/// simulator and tests.
///
/// Every field is settable, so tests can also build chains that break exactly one rule of docs/protocol-notes.md#noise-certificate-chain.
public struct CertificateChainBuilder: Sendable {
    /// The root key pair; clients must be configured with its public key.
    public var root: Curve25519KeyPair
    /// The intermediate key pair, certified by the root.
    public var intermediate: Curve25519KeyPair
    /// The intermediate certificate's serial.
    public var intermediateSerial: UInt32 = 1
    /// The intermediate's issuer serial (0 means the root).
    public var intermediateIssuerSerial: UInt32 = 0
    /// The leaf certificate's serial.
    public var leafSerial: UInt32 = 2
    /// The leaf's issuer serial; nil means the intermediate's serial.
    public var leafIssuerSerial: UInt32?
    /// The intermediate's validity in unix seconds; nil leaves notBefore/notAfter out.
    public var intermediateValidity: ClosedRange<UInt64>?
    /// The leaf's validity in unix seconds; nil leaves notBefore/notAfter out.
    public var leafValidity: ClosedRange<UInt64>?

    /// A builder with the given (by default fresh) root and intermediate keys and no validity windows.
    public init(root: Curve25519KeyPair = .generate(), intermediate: Curve25519KeyPair = .generate()) {
        self.root = root
        self.intermediate = intermediate
    }

    /// The chain as a `CertChain` message certifying `leafKey` (the server's static public key).
    public func makeChain(leafKey: [UInt8]) throws -> Wa_CertChain {
        let intermediateDetails = try Self.details(
            serial: intermediateSerial, issuerSerial: intermediateIssuerSerial, key: intermediate.publicKey,
            validity: intermediateValidity)
        let leafDetails = try Self.details(
            serial: leafSerial, issuerSerial: leafIssuerSerial ?? intermediateSerial, key: leafKey, validity: leafValidity)
        var chain = Wa_CertChain()
        chain.intermediate.details = Data(intermediateDetails)
        chain.intermediate.signature = Data(try root.sign(intermediateDetails))
        chain.leaf.details = Data(leafDetails)
        chain.leaf.signature = Data(try intermediate.sign(leafDetails))
        return chain
    }

    /// The serialized `CertChain` certifying `leafKey`, ready to be the ServerHello payload.
    public func build(leafKey: [UInt8]) throws -> [UInt8] {
        try makeChain(leafKey: leafKey).serializedBytes()
    }

    /// Serialized certificate `Details`.
    public static func details(
        serial: UInt32, issuerSerial: UInt32, key: [UInt8], validity: ClosedRange<UInt64>?
    ) throws -> [UInt8] {
        var details = Wa_CertChain.NoiseCertificate.Details()
        details.serial = serial
        details.issuerSerial = issuerSerial
        details.key = Data(key)
        if let validity {
            details.notBefore = validity.lowerBound
            details.notAfter = validity.upperBound
        }
        return try details.serializedBytes()
    }
}
