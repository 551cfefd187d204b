import Foundation
import TestSupport
import Testing

@testable import WhatsApp

@Suite struct XEdDSATests {
    // The signature vector of docs/protocol-notes.md#test-vectors.
    static let vectorPrivate = bytesFromHex("0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20")
    static let vectorPublic = bytesFromHex("07a37cbc142093c8b755dc1b10e86cb426374ad16aa853ed0bdfc0b2b86d1c7c")
    static let vectorMessage = bytesFromHex("060064657461696c73") + vectorPublic
    static let vectorSignature = bytesFromHex(
        "43a08ef887af5e073032278043d0fc35b74f567455414d7e342cdc763be683e5"
            + "4caf4293532e0dfe05d145da8c10fc1671cad9739e39cc09fa335d70fcbb998f")

    @Test func vectorKeyDerivation() throws {
        let pair = try Curve25519KeyPair(privateKey: Self.vectorPrivate)
        #expect(pair.publicKey == Self.vectorPublic)
    }

    @Test func vectorVerifies() {
        #expect(XEdDSA.verify(publicKey: Self.vectorPublic, message: Self.vectorMessage, signature: Self.vectorSignature))
    }

    @Test func vectorFailsWithAnyFlippedBit() {
        for bit in 0..<(64 * 8) {
            var signature = Self.vectorSignature
            signature[bit / 8] ^= UInt8(1) << UInt8(bit % 8)
            #expect(!XEdDSA.verify(publicKey: Self.vectorPublic, message: Self.vectorMessage, signature: signature), "bit \(bit)")
        }
        var message = Self.vectorMessage
        message[3] ^= 0x01
        #expect(!XEdDSA.verify(publicKey: Self.vectorPublic, message: message, signature: Self.vectorSignature))
        var key = Self.vectorPublic
        key[0] ^= 0x01
        #expect(!XEdDSA.verify(publicKey: key, message: Self.vectorMessage, signature: Self.vectorSignature))
    }

    @Test func signatureFromVectorKeyVerifiesAndCarriesSignBit() throws {
        let signature = try XEdDSA.sign(privateKey: Self.vectorPrivate, message: Self.vectorMessage)
        #expect(signature.count == 64)
        // The vector key's Edwards sign bit is 1, and libsignal copies it into sig[63].
        #expect(signature[63] & 0x80 == 0x80)
        #expect(XEdDSA.verify(publicKey: Self.vectorPublic, message: Self.vectorMessage, signature: signature))
    }

    @Test func roundTripWithFreshKeys() throws {
        for length in [0, 1, 32, 33, 100, 255, 256, 1000] {
            let pair = Curve25519KeyPair.generate()
            let message = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 7) }
            let signature = try pair.sign(message)
            #expect(XEdDSA.verify(publicKey: pair.publicKey, message: message, signature: signature), "length \(length)")
            let other = Curve25519KeyPair.generate()
            #expect(!XEdDSA.verify(publicKey: other.publicKey, message: message, signature: signature))
        }
    }

    @Test func signedPreKeyForm() throws {
        let identity = Curve25519KeyPair.generate()
        let signedPreKey = Curve25519KeyPair.generate()
        #expect(signedPreKey.serializedPublicKey.count == 33)
        #expect(signedPreKey.serializedPublicKey.first == 0x05)
        let signature = try identity.sign(signedPreKey.serializedPublicKey)
        #expect(XEdDSA.verify(publicKey: identity.publicKey, message: signedPreKey.serializedPublicKey, signature: signature))
        // Signing the bare 32-byte key is a different message.
        #expect(!XEdDSA.verify(publicKey: identity.publicKey, message: signedPreKey.publicKey, signature: signature))
    }

    @Test func badInputs() {
        #expect(throws: XEdDSAError.invalidPrivateKey) { try XEdDSA.sign(privateKey: [1, 2, 3], message: [1]) }
        #expect(!XEdDSA.verify(publicKey: [1, 2], message: [1], signature: Self.vectorSignature))
        #expect(!XEdDSA.verify(publicKey: Self.vectorPublic, message: Self.vectorMessage, signature: Array(Self.vectorSignature.prefix(63))))
        #expect(throws: XEdDSAError.invalidPrivateKey) { try Curve25519KeyPair(privateKey: []) }
    }

    @Test func concurrentSigningIsSafe() async throws {
        let pair = Curve25519KeyPair.generate()
        try await withThrowingTaskGroup(of: Bool.self) { group in
            for index in 0..<32 {
                group.addTask {
                    let message = [UInt8(index)]
                    let signature = try pair.sign(message)
                    return XEdDSA.verify(publicKey: pair.publicKey, message: message, signature: signature)
                }
            }
            for try await ok in group { #expect(ok) }
        }
    }

    @Test func keyPairAgreementAndCoding() throws {
        let alice = Curve25519KeyPair.generate()
        let bob = Curve25519KeyPair.generate()
        #expect(try alice.sharedSecret(with: bob.publicKey) == bob.sharedSecret(with: alice.publicKey))
        #expect(alice.privateKey[0] & 7 == 0 && alice.privateKey[31] & 0xC0 == 0x40)
        // A low-order point (u = 0) is refused.
        #expect(throws: XEdDSAError.invalidPublicKey) { try alice.sharedSecret(with: [UInt8](repeating: 0, count: 32)) }
        let decoded = try JSONDecoder().decode(Curve25519KeyPair.self, from: JSONEncoder().encode(alice))
        #expect(decoded == alice)
        #expect(!alice.description.contains(hexOf(alice.privateKey)))
        let mismatched = #"{"privateKey":\#(alice.privateKey),"publicKey":\#(bob.publicKey)}"#
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(Curve25519KeyPair.self, from: Data(mismatched.utf8)) }
    }

    @Test func generatedPairsHoldTheirPrivateKeysPublicKey() throws {
        // generate() takes the public key from the unclamped scalar; X25519's own clamping makes it the same point.
        for _ in 0..<64 {
            let pair = Curve25519KeyPair.generate()
            #expect(try Curve25519KeyPair(privateKey: pair.privateKey).publicKey == pair.publicKey)
            #expect(pair.privateKey[0] & 7 == 0 && pair.privateKey[31] & 0xC0 == 0x40)
        }
    }

    @Test func preKeysRoundTripThroughTheirStorageForm() throws {
        let keys = PreKey.generate(count: 812, firstID: PreKey.maximumID - 5)
        let bytes = PreKey.serialize(keys)
        #expect(bytes.count == 1 + 812 * 68)
        #expect(try PreKey.deserialize(bytes) == keys)
        #expect(try PreKey.deserialize([1]) == [])
        #expect(keys[6].id == 1)  // ids wrap within 1…0xFFFFFF, never 0
    }

    @Test func malformedPreKeyStorageIsRefused() throws {
        let bytes = PreKey.serialize(PreKey.generate(count: 3, firstID: 1))
        #expect(throws: PreKeyStorageError.self) { try PreKey.deserialize([]) }
        #expect(throws: PreKeyStorageError.self) { try PreKey.deserialize([2] + bytes.dropFirst()) }
        #expect(throws: PreKeyStorageError.self) { try PreKey.deserialize(Array(bytes.dropLast())) }
        var zeroID = bytes
        zeroID[1...4] = [0, 0, 0, 0]
        #expect(throws: PreKeyStorageError.self) { try PreKey.deserialize(zeroID) }
        var wideID = bytes
        wideID[1] = 1
        #expect(throws: PreKeyStorageError.self) { try PreKey.deserialize(wideID) }
    }

    // MARK: Cross-check with an independent implementation (PyPI xeddsa + cryptography)

    @Test(.enabled(if: ExternalTools.pythonEnabled)) func crossCheckWithIndependentImplementation() throws {
        let python = try requireTestPython()
        let script = pythonScriptPath("xeddsa_check.py")
        for length in [0, 33, 70, 200] {
            let pair = Curve25519KeyPair.generate()
            let message = (0..<length).map { _ in UInt8.random(in: 0...255) }

            // Ours → theirs.
            let ours = try pair.sign(message)
            let verified = try runProcess(
                python, [script, "verify", hexOf(pair.publicKey), hexOf(message), hexOf(ours)])
            #expect(verified.status == 0, "\(verified.stderr)")
            #expect(verified.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "valid")
            var tampered = ours
            tampered[10] ^= 0x20
            let rejected = try runProcess(
                python, [script, "verify", hexOf(pair.publicKey), hexOf(message), hexOf(tampered)])
            #expect(rejected.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "invalid")

            // Theirs → ours.
            let signed = try runProcess(python, [script, "sign", hexOf(pair.privateKey), hexOf(message)])
            #expect(signed.status == 0, "\(signed.stderr)")
            let theirs = bytesFromHex(signed.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
            #expect(theirs.count == 64)
            #expect(XEdDSA.verify(publicKey: pair.publicKey, message: message, signature: theirs))
        }
        // The same vector also verifies there.
        let vector = try runProcess(
            python, [script, "verify", hexOf(Self.vectorPublic), hexOf(Self.vectorMessage), hexOf(Self.vectorSignature)])
        #expect(vector.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "valid")
    }
}
