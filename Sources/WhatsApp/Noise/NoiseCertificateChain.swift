import Foundation
import SwiftProtobuf
import WAProto

/// The decoded details of one certificate in the server's Noise chain.
public struct NoiseCertificateDetails: Sendable, Equatable {
    /// Serial number of this certificate.
    public let serial: UInt32
    /// Serial of the certificate that signed this one (0 = the root).
    public let issuerSerial: UInt32
    /// The certified 32-byte X25519 public key.
    public let key: [UInt8]
    /// Start of validity (unix seconds), when present.
    public let notBefore: UInt64?
    /// End of validity (unix seconds), when present.
    public let notAfter: UInt64?

    init(_ details: Wa_CertChain.NoiseCertificate.Details) {
        serial = details.serial
        issuerSerial = details.issuerSerial
        key = Array(details.key)
        notBefore = details.hasNotBefore ? details.notBefore : nil
        notAfter = details.hasNotAfter ? details.notAfter : nil
    }
}

/// A server certificate chain that passed every check of docs/protocol-notes.md#noise-certificate-chain.
public struct NoiseCertificateChain: Sendable, Equatable {
    /// The intermediate certificate (signed by the root).
    public let intermediate: NoiseCertificateDetails
    /// The leaf certificate (signed by the intermediate; its key is the server's static key).
    public let leaf: NoiseCertificateDetails

    /// Verifies a serialized `CertChain` against `rootPublicKey` and the server static key from the handshake.
    ///
    /// Runs whatsmeow's eight checks in order and throws the first that fails. Validity windows are checked only
    /// where present, each bound widened by `clockSkewTolerance` seconds.
    public static func verify(
        _ serialized: [UInt8], rootPublicKey: [UInt8], serverStaticKey: [UInt8], now: Date, clockSkewTolerance: UInt64
    ) throws(NoiseHandshakeError) -> NoiseCertificateChain {
        guard let chain = try? Wa_CertChain(serializedBytes: serialized) else { throw .certificateChainMalformed }
        // 1. All four parts present, signatures 64 bytes.
        guard chain.hasIntermediate, chain.intermediate.hasDetails, chain.intermediate.hasSignature,
            chain.hasLeaf, chain.leaf.hasDetails, chain.leaf.hasSignature
        else { throw .certificateMissing }
        guard chain.intermediate.signature.count == XEdDSA.signatureLength,
            chain.leaf.signature.count == XEdDSA.signatureLength
        else { throw .certificateSignatureLength }
        // 2. Intermediate signed by the root, over the raw details bytes.
        let intermediateBytes = Array(chain.intermediate.details)
        guard XEdDSA.verify(publicKey: rootPublicKey, message: intermediateBytes, signature: Array(chain.intermediate.signature))
        else { throw .intermediateSignatureInvalid }
        // 3. Intermediate issued by the root (serial 0), with a 32-byte key.
        guard let intermediateDetails = try? Wa_CertChain.NoiseCertificate.Details(serializedBytes: intermediateBytes) else {
            throw .intermediateDetailsMalformed
        }
        let intermediate = NoiseCertificateDetails(intermediateDetails)
        guard intermediate.issuerSerial == 0 else { throw .intermediateIssuerSerialInvalid }
        guard intermediate.key.count == 32 else { throw .intermediateKeyInvalid }
        // 4. Leaf signed by the intermediate key.
        let leafBytes = Array(chain.leaf.details)
        guard XEdDSA.verify(publicKey: intermediate.key, message: leafBytes, signature: Array(chain.leaf.signature)) else {
            throw .leafSignatureInvalid
        }
        let seconds = UInt64(max(0, now.timeIntervalSince1970.rounded(.down)))
        // 5. Intermediate validity.
        switch validity(of: intermediate, at: seconds, tolerance: clockSkewTolerance) {
        case .notYetValid: throw .intermediateNotYetValid
        case .expired: throw .intermediateExpired
        case .valid: break
        }
        // 6. Leaf issued by the intermediate.
        guard let leafDetails = try? Wa_CertChain.NoiseCertificate.Details(serializedBytes: leafBytes) else {
            throw .leafDetailsMalformed
        }
        let leaf = NoiseCertificateDetails(leafDetails)
        guard leaf.issuerSerial == intermediate.serial else { throw .leafIssuerSerialMismatch }
        // 7. Leaf key is the server static key (constant time).
        guard constantTimeEqual(leaf.key, serverStaticKey) else { throw .leafKeyMismatch }
        // 8. Leaf validity.
        switch validity(of: leaf, at: seconds, tolerance: clockSkewTolerance) {
        case .notYetValid: throw .leafNotYetValid
        case .expired: throw .leafExpired
        case .valid: break
        }
        return NoiseCertificateChain(intermediate: intermediate, leaf: leaf)
    }

    private enum Validity { case valid, notYetValid, expired }

    private static func validity(of details: NoiseCertificateDetails, at now: UInt64, tolerance: UInt64) -> Validity {
        if let notBefore = details.notBefore, now < notBefore, notBefore - now > tolerance { return .notYetValid }
        if let notAfter = details.notAfter, now > notAfter, now - notAfter > tolerance { return .expired }
        return .valid
    }

    private static func constantTimeEqual(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
        guard lhs.count == rhs.count else { return false }
        var difference: UInt8 = 0
        for index in lhs.indices { difference |= lhs[index] ^ rhs[index] }
        return difference == 0
    }
}
