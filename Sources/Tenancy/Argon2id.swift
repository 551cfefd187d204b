import CArgon2
import Dispatch

/// argon2id password hashing through libargon2, producing and verifying PHC strings (`$argon2id$v=19$m=…`).
public struct Argon2id: Sendable {
    /// Cost parameters for new hashes. Verification reads the parameters from the PHC string.
    public struct Parameters: Sendable, Equatable {
        /// Passes over memory (t).
        public var iterations: UInt32
        /// Memory in KiB (m).
        public var memoryKiB: UInt32
        /// Lanes (p).
        public var parallelism: UInt32

        public init(iterations: UInt32, memoryKiB: UInt32, parallelism: UInt32) {
            self.iterations = iterations
            self.memoryKiB = memoryKiB
            self.parallelism = parallelism
        }

        /// RFC 9106 §4 second recommended option: t=3, m=64 MiB, p=4 (argon2-cffi's default too).
        public static let rfc9106LowMemory = Parameters(iterations: 3, memoryKiB: 64 * 1024, parallelism: 4)
    }

    /// Parameters used for new hashes.
    public let parameters: Parameters
    static let saltLength = 16
    static let hashLength = 32

    public init(parameters: Parameters = .rfc9106LowMemory) {
        self.parameters = parameters
    }

    /// Hashes `secret` with a fresh random salt; returns the PHC string.
    public func hash(_ secret: String) throws(Argon2Error) -> String {
        let salt = SecureRandom.bytes(Self.saltLength)
        let encodedLength = argon2_encodedlen(
            parameters.iterations, parameters.memoryKiB, parameters.parallelism, UInt32(salt.count), UInt32(Self.hashLength),
            Argon2_id)
        var encoded = [CChar](repeating: 0, count: encodedLength)
        let password = Array(secret.utf8)
        let status = password.withUnsafeBytes { passwordBytes in
            salt.withUnsafeBytes { saltBytes in
                argon2id_hash_encoded(
                    parameters.iterations, parameters.memoryKiB, parameters.parallelism,
                    passwordBytes.baseAddress, passwordBytes.count, saltBytes.baseAddress, saltBytes.count,
                    Self.hashLength, &encoded, encodedLength)
            }
        }
        guard status == ARGON2_OK.rawValue else { throw Argon2Error(status: status) }
        return String(decoding: encoded.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// True if `secret` matches the PHC string `hash`; false on mismatch or on a hash that is not argon2id.
    public func verify(_ secret: String, against hash: String) -> Bool {
        guard hash.hasPrefix("$argon2id$") else { return false }
        let password = Array(secret.utf8)
        let status = password.withUnsafeBytes { passwordBytes in
            argon2id_verify(hash, passwordBytes.baseAddress, passwordBytes.count)
        }
        return status == ARGON2_OK.rawValue
    }

    /// `verify` run on a Dispatch queue so the CPU-bound work does not hold a Swift concurrency thread.
    public func verifyOffPool(_ secret: String, against hash: String) async -> Bool {
        await withCheckedContinuation { continuation in
            Self.queue.async { continuation.resume(returning: verify(secret, against: hash)) }
        }
    }

    /// `hash` run on a Dispatch queue so the CPU-bound work does not hold a Swift concurrency thread.
    public func hashOffPool(_ secret: String) async throws(Argon2Error) -> String {
        let result: Result<String, Argon2Error> = await withCheckedContinuation { continuation in
            Self.queue.async { continuation.resume(returning: Result { () throws(Argon2Error) in try hash(secret) }) }
        }
        return try result.get()
    }

    private static let queue = DispatchQueue(label: "wahost.argon2", qos: .userInitiated, attributes: .concurrent)
}

/// libargon2 refused to hash.
public struct Argon2Error: Error, CustomStringConvertible {
    /// libargon2's status code.
    public let status: Int32
    public var description: String { "argon2id failed: " + String(cString: argon2_error_message(status)) }
}
