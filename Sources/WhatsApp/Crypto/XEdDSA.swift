import CSignal
import Crypto
import CryptoExtras
import Foundation

/// Curve25519 signatures as libsignal makes them ("XEdDSA" with the Edwards sign bit kept in `sig[63]`).
///
/// Signing and verification run in libsignal-protocol-c (`curve_calculate_signature` /
/// `curve_verify_signature`). Keys are raw 32-byte X25519 keys; the same key does key agreement and signing.
/// Every function here is thread-safe: the one global libsignal context is created once, lazily, and is only
/// read afterwards.
public enum XEdDSA {
    /// Length of a signature in bytes.
    public static let signatureLength = 64

    /// Signs `message` with a raw 32-byte Curve25519 private key; returns the 64-byte signature.
    public static func sign(privateKey: [UInt8], message: [UInt8]) throws -> [UInt8] {
        guard privateKey.count == 32 else { throw XEdDSAError.invalidPrivateKey }
        let context = try LibsignalCurveContext.shared.get().pointer
        // libsignal uses the key as the Ed25519 scalar without clamping it; X25519 always clamps.
        var clamped = privateKey
        clamped[0] &= 248
        clamped[31] &= 127
        clamped[31] |= 64

        var key: OpaquePointer?
        let decoded = clamped.withUnsafeBufferPointer { curve_decode_private_point(&key, $0.baseAddress, 32, context) }
        guard decoded == 0, let key else { throw XEdDSAError.invalidPrivateKey }
        defer { signal_type_unref(key) }

        var output: OpaquePointer?
        let result = withNonEmptyPointer(message) { pointer, count in
            curve_calculate_signature(context, &output, key, pointer, count)
        }
        guard let output else { throw XEdDSAError.signingFailed(code: result) }
        defer { signal_buffer_free(output) }
        guard result == 0, signal_buffer_len(output) == signatureLength, let bytes = signal_buffer_const_data(output) else {
            throw XEdDSAError.signingFailed(code: result)
        }
        return Array(UnsafeBufferPointer(start: bytes, count: signatureLength))
    }

    /// Checks a 64-byte signature over `message` against a raw 32-byte Curve25519 public key.
    public static func verify(publicKey: [UInt8], message: [UInt8], signature: [UInt8]) -> Bool {
        guard publicKey.count == 32, signature.count == signatureLength,
            let context = try? LibsignalCurveContext.shared.get().pointer
        else { return false }
        var key: OpaquePointer?
        let serialized = [0x05] + publicKey
        let decoded = serialized.withUnsafeBufferPointer { curve_decode_point(&key, $0.baseAddress, 33, context) }
        guard decoded == 0, let key else { return false }
        defer { signal_type_unref(key) }
        let result = withNonEmptyPointer(message) { pointer, count in
            signature.withUnsafeBufferPointer { curve_verify_signature(key, pointer, count, $0.baseAddress, 64) }
        }
        return result == 1
    }
}

/// A failure to sign, or an unusable Curve25519 key.
public struct XEdDSAError: Error, Equatable, CustomStringConvertible {
    private enum Code: Equatable {
        case invalidPrivateKey
        case invalidPublicKey
        case signingFailed(Int32)
        case contextUnavailable(Int32)
    }

    private let code: Code
    private init(_ code: Code) { self.code = code }

    /// The private key is not 32 bytes (or libsignal refused it).
    public static let invalidPrivateKey = XEdDSAError(.invalidPrivateKey)
    /// The public key is not 32 bytes, or key agreement with it failed (for example a low-order point).
    public static let invalidPublicKey = XEdDSAError(.invalidPublicKey)
    /// libsignal failed to compute a signature (`code` is its negative error code).
    public static func signingFailed(code: Int32) -> XEdDSAError { XEdDSAError(.signingFailed(code)) }
    /// The libsignal context could not be created (`code` is its negative error code).
    static func contextUnavailable(code: Int32) -> XEdDSAError { XEdDSAError(.contextUnavailable(code)) }

    public var description: String {
        switch code {
        case .invalidPrivateKey: "invalid Curve25519 private key"
        case .invalidPublicKey: "invalid Curve25519 public key"
        case .signingFailed(let code): "libsignal signature calculation failed (\(code))"
        case .contextUnavailable(let code): "libsignal context setup failed (\(code))"
        }
    }
}

// MARK: - The global libsignal context

/// The process-wide libsignal context, with a complete crypto provider built on swift-crypto.
struct LibsignalCurveContext: @unchecked Sendable {
    // @unchecked: the context is created once and only read afterwards; libsignal touches no mutable context
    // state in the curve functions, and every provider callback below is thread-safe.
    let pointer: OpaquePointer

    /// Created on first use; Swift initialises globals and static lets exactly once, thread-safely.
    static let shared: Result<LibsignalCurveContext, XEdDSAError> = make()

    private static func make() -> Result<LibsignalCurveContext, XEdDSAError> {
        var context: OpaquePointer?
        let created = signal_context_create(&context, nil)
        guard created == 0, let context else { return .failure(.contextUnavailable(code: created)) }
        // libsignal refuses (-22) a provider with any callback missing, so all of them are set.
        var provider = signal_crypto_provider()
        provider.random_func = providerRandom
        provider.hmac_sha256_init_func = providerHMACInit
        provider.hmac_sha256_update_func = providerHMACUpdate
        provider.hmac_sha256_final_func = providerHMACFinal
        provider.hmac_sha256_cleanup_func = providerHMACCleanup
        provider.sha512_digest_init_func = providerSHA512Init
        provider.sha512_digest_update_func = providerSHA512Update
        provider.sha512_digest_final_func = providerSHA512Final
        provider.sha512_digest_cleanup_func = providerSHA512Cleanup
        provider.encrypt_func = providerEncrypt
        provider.decrypt_func = providerDecrypt
        provider.user_data = nil
        let set = signal_context_set_crypto_provider(context, &provider)
        guard set == 0 else {
            signal_context_destroy(context)
            return .failure(.contextUnavailable(code: set))
        }
        return .success(LibsignalCurveContext(pointer: context))
    }
}

// MARK: - Crypto provider callbacks (C function pointers: no captures, globals only)

private final class HMACBox {
    var hmac: HMAC<SHA256>
    init(key: SymmetricKey) { hmac = HMAC<SHA256>(key: key) }
}

private final class SHA512Box {
    var hasher = SHA512()
}

private let providerRandom: @convention(c) (UnsafeMutablePointer<UInt8>?, Int, UnsafeMutableRawPointer?) -> Int32 = {
    data, length, _ in
    guard length > 0 else { return 0 }
    guard let data else { return SG_ERR_INVAL }
    var generator = SystemRandomNumberGenerator()
    var offset = 0
    while offset < length {
        let word = generator.next() as UInt64
        for index in 0..<min(8, length - offset) {
            data[offset + index] = UInt8(truncatingIfNeeded: word >> (8 * UInt64(index)))
        }
        offset += 8
    }
    return 0
}

private let providerHMACInit:
    @convention(c) (UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafePointer<UInt8>?, Int, UnsafeMutableRawPointer?) -> Int32 = {
        context, key, length, _ in
        guard let context else { return SG_ERR_INVAL }
        let keyBytes = bufferBytes(key, length)
        context.pointee = Unmanaged.passRetained(HMACBox(key: SymmetricKey(data: keyBytes))).toOpaque()
        return 0
    }

private let providerHMACUpdate: @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<UInt8>?, Int, UnsafeMutableRawPointer?) -> Int32 = {
    context, data, length, _ in
    guard let context else { return SG_ERR_INVAL }
    let box = Unmanaged<HMACBox>.fromOpaque(context).takeUnretainedValue()
    if length > 0, let data { box.hmac.update(data: UnsafeRawBufferPointer(start: data, count: length)) }
    return 0
}

private let providerHMACFinal: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutablePointer<OpaquePointer?>?, UnsafeMutableRawPointer?) -> Int32 = {
    context, output, _ in
    guard let context, let output else { return SG_ERR_INVAL }
    let box = Unmanaged<HMACBox>.fromOpaque(context).takeUnretainedValue()
    let mac = Array(box.hmac.finalize())
    return storeBuffer(mac, into: output)
}

private let providerHMACCleanup: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Void = { context, _ in
    guard let context else { return }
    Unmanaged<HMACBox>.fromOpaque(context).release()
}

private let providerSHA512Init: @convention(c) (UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutableRawPointer?) -> Int32 = {
    context, _ in
    guard let context else { return SG_ERR_INVAL }
    context.pointee = Unmanaged.passRetained(SHA512Box()).toOpaque()
    return 0
}

private let providerSHA512Update: @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<UInt8>?, Int, UnsafeMutableRawPointer?) -> Int32 = {
    context, data, length, _ in
    guard let context else { return SG_ERR_INVAL }
    let box = Unmanaged<SHA512Box>.fromOpaque(context).takeUnretainedValue()
    if length > 0, let data { box.hasher.update(bufferPointer: UnsafeRawBufferPointer(start: data, count: length)) }
    return 0
}

private let providerSHA512Final: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutablePointer<OpaquePointer?>?, UnsafeMutableRawPointer?) -> Int32 = {
    context, output, _ in
    guard let context, let output else { return SG_ERR_INVAL }
    let box = Unmanaged<SHA512Box>.fromOpaque(context).takeUnretainedValue()
    let digest = Array(box.hasher.finalize())
    box.hasher = SHA512()  // "prepare the context for reuse"
    return storeBuffer(digest, into: output)
}

private let providerSHA512Cleanup: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Void = { context, _ in
    guard let context else { return }
    Unmanaged<SHA512Box>.fromOpaque(context).release()
}

private typealias CipherCallback = @convention(c) (
    UnsafeMutablePointer<OpaquePointer?>?, Int32, UnsafePointer<UInt8>?, Int, UnsafePointer<UInt8>?, Int,
    UnsafePointer<UInt8>?, Int, UnsafeMutableRawPointer?
) -> Int32

private let providerEncrypt: CipherCallback = { output, cipher, key, keyLength, iv, ivLength, input, inputLength, _ in
    runCipher(encrypt: true, output, cipher, key, keyLength, iv, ivLength, input, inputLength)
}

private let providerDecrypt: CipherCallback = { output, cipher, key, keyLength, iv, ivLength, input, inputLength, _ in
    runCipher(encrypt: false, output, cipher, key, keyLength, iv, ivLength, input, inputLength)
}

// swiftlint:disable:next function_parameter_count
private func runCipher(
    encrypt: Bool, _ output: UnsafeMutablePointer<OpaquePointer?>?, _ cipher: Int32,
    _ key: UnsafePointer<UInt8>?, _ keyLength: Int, _ iv: UnsafePointer<UInt8>?, _ ivLength: Int,
    _ input: UnsafePointer<UInt8>?, _ inputLength: Int
) -> Int32 {
    guard let output, [16, 24, 32].contains(keyLength), ivLength == 16 else { return SG_ERR_INVAL }
    let symmetricKey = SymmetricKey(data: bufferBytes(key, keyLength))
    let ivBytes = bufferBytes(iv, ivLength)
    let data = bufferBytes(input, inputLength)
    do {
        let result: Data
        switch cipher {
        case SG_CIPHER_AES_CTR_NOPADDING:
            let nonce = try AES._CTR.Nonce(nonceBytes: ivBytes)
            result = try AES._CTR.encrypt(data, using: symmetricKey, nonce: nonce)
        case SG_CIPHER_AES_CBC_PKCS5:
            let cbcIV = try AES._CBC.IV(ivBytes: ivBytes)
            result =
                encrypt
                ? try AES._CBC.encrypt(data, using: symmetricKey, iv: cbcIV)
                : try AES._CBC.decrypt(data, using: symmetricKey, iv: cbcIV)
        default:
            return SG_ERR_INVAL
        }
        return storeBuffer(Array(result), into: output)
    } catch {
        return SG_ERR_UNKNOWN
    }
}
