import Crypto
import Foundation

/// The two AES-256-GCM directions of an established Noise session (docs/protocol-notes.md#noise-transport).
///
/// Each direction has its own 32-bit counter starting at 0; the IV is 8 zero bytes followed by the counter,
/// big-endian, and the associated data is empty. There is no rekeying: after 2^32 frames in one direction that
/// direction is exhausted and every further call throws.
///
/// Thread-safety: a value type with `mutating` methods. Frames must be sealed and opened strictly in order, so
/// exactly one owner (the connection's task) holds it; copying it would fork the counters.
public struct NoiseTransport: Sendable, CustomStringConvertible {
    private let writeKey: SymmetricKey
    private let readKey: SymmetricKey
    /// Number of frames encrypted so far (the next write counter).
    public private(set) var writeCount: UInt64 = 0
    /// Number of frames decrypted (or attempted) so far (the next read counter).
    public private(set) var readCount: UInt64 = 0

    /// Makes a transport from two 32-byte AES keys (the client writes with the first half of the split).
    public init(writeKey: [UInt8], readKey: [UInt8]) throws {
        guard writeKey.count == 32, readKey.count == 32 else { throw NoiseTransportError.invalidKey }
        self.init(writeKey: SymmetricKey(data: writeKey), readKey: SymmetricKey(data: readKey))
    }

    package init(writeKey: SymmetricKey, readKey: SymmetricKey) {
        self.writeKey = writeKey
        self.readKey = readKey
    }

    /// Encrypts one frame payload with the next write counter; returns ciphertext plus the 16-byte tag.
    public mutating func encrypt(_ plaintext: [UInt8]) throws -> [UInt8] {
        guard let counter = UInt32(exactly: writeCount) else { throw NoiseTransportError.counterExhausted }
        writeCount += 1
        return try NoiseCipher.seal(plaintext, key: writeKey, counter: counter, associatedData: [])
    }

    /// Decrypts one frame payload with the next read counter.
    ///
    /// The counter advances even when authentication fails (as whatsmeow does); after a failure the stream is
    /// out of step and the connection should be closed.
    public mutating func decrypt(_ ciphertext: [UInt8]) throws -> [UInt8] {
        guard let counter = UInt32(exactly: readCount) else { throw NoiseTransportError.counterExhausted }
        readCount += 1
        guard let plaintext = NoiseCipher.open(ciphertext, key: readKey, counter: counter, associatedData: []) else {
            throw NoiseTransportError.decryptionFailed
        }
        return plaintext
    }

    /// Test hook: moves the counters forward (exhaustion tests only).
    mutating func skipForTesting(write: UInt64, read: UInt64) {
        writeCount = write
        readCount = read
    }

    public var description: String { "NoiseTransport(written: \(writeCount), read: \(readCount))" }
}

/// A failure of the Noise transport phase.
public struct NoiseTransportError: Error, Equatable, CustomStringConvertible {
    private enum Code: Equatable {
        case invalidKey
        case counterExhausted
        case decryptionFailed
    }

    private let code: Code
    private init(_ code: Code) { self.code = code }

    /// A transport key is not 32 bytes.
    public static let invalidKey = NoiseTransportError(.invalidKey)
    /// 2^32 frames have used up this direction's nonces; the connection must be re-established.
    public static let counterExhausted = NoiseTransportError(.counterExhausted)
    /// A frame failed AES-GCM authentication (tampered, truncated or out of order).
    public static let decryptionFailed = NoiseTransportError(.decryptionFailed)

    public var description: String {
        switch code {
        case .invalidKey: "noise transport key must be 32 bytes"
        case .counterExhausted: "noise transport counter exhausted"
        case .decryptionFailed: "noise frame failed authentication"
        }
    }
}

/// AES-256-GCM with WhatsApp's nonce layout: 8 zero bytes, then the 32-bit counter big-endian.
enum NoiseCipher {
    static let tagLength = 16

    static func nonce(_ counter: UInt32) -> AES.GCM.Nonce {
        let bytes: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0, UInt8(counter >> 24), UInt8(truncatingIfNeeded: counter >> 16),
                              UInt8(truncatingIfNeeded: counter >> 8), UInt8(truncatingIfNeeded: counter)]
        // A 12-byte nonce is always accepted.
        guard let nonce = try? AES.GCM.Nonce(data: bytes) else { preconditionFailure("12-byte GCM nonce rejected") }
        return nonce
    }

    static func seal(_ plaintext: [UInt8], key: SymmetricKey, counter: UInt32, associatedData: [UInt8]) throws -> [UInt8] {
        let box = try AES.GCM.seal(plaintext, using: key, nonce: nonce(counter), authenticating: associatedData)
        return Array(box.ciphertext) + Array(box.tag)
    }

    /// Returns nil when the ciphertext is too short or fails authentication.
    static func open(_ ciphertext: [UInt8], key: SymmetricKey, counter: UInt32, associatedData: [UInt8]) -> [UInt8]? {
        guard ciphertext.count >= tagLength,
            let box = try? AES.GCM.SealedBox(
                nonce: nonce(counter), ciphertext: ciphertext.dropLast(tagLength), tag: ciphertext.suffix(tagLength)),
            let plaintext = try? AES.GCM.open(box, using: key, authenticating: associatedData)
        else { return nil }
        return Array(plaintext)
    }
}
