import Foundation
import Testing
import WABinary

@testable import WhatsApp

@Suite struct PairingCredentialsTests {
    @Test func generatedCredentialsAreWellFormed() throws {
        let credentials = try DeviceCredentials.generate()
        #expect(credentials.noiseKey.publicKey.count == 32)
        #expect(credentials.identityKey.publicKey.count == 32)
        #expect(credentials.advSecretKey.count == 32)
        #expect(DeviceCredentials.registrationIDRange.contains(credentials.registrationID))
        #expect(credentials.signedPreKey.id == 1)
        #expect(credentials.signedPreKey.signature.count == 64)
        #expect(credentials.pairedAccount == nil)
        #expect(!credentials.isPaired)
        #expect(credentials.noiseKey != credentials.identityKey)
    }

    @Test func signedPreKeySignsTheSerialisedPublicKey() throws {
        let credentials = try DeviceCredentials.generate()
        let preKey = credentials.signedPreKey
        #expect(preKey.isSigned(by: credentials.identityKey.publicKey))
        #expect(XEdDSA.verify(publicKey: credentials.identityKey.publicKey, message: [0x05] + preKey.keyPair.publicKey, signature: preKey.signature))
        // The bare 32-byte key is not what is signed.
        #expect(!XEdDSA.verify(publicKey: credentials.identityKey.publicKey, message: preKey.keyPair.publicKey, signature: preKey.signature))
        #expect(!preKey.isSigned(by: credentials.noiseKey.publicKey))
    }

    @Test func descriptionsShowNoKeyMaterial() throws {
        let credentials = try DeviceCredentials.generate()
        let texts = [
            String(describing: credentials), String(reflecting: credentials), "\(credentials.signedPreKey)",
            String(reflecting: credentials.signedPreKey),
        ]
        let secrets = [credentials.noiseKey.privateKey, credentials.identityKey.privateKey, credentials.advSecretKey, credentials.signedPreKey.keyPair.privateKey]
        for text in texts {
            for secret in secrets {
                #expect(!text.contains(PairingTestSupport.hex(secret)))
                #expect(!text.contains(secret.map(String.init).joined(separator: ", ")))
            }
        }
    }

    @Test func unpairedCredentialsRoundTripThroughJSON() throws {
        let credentials = try DeviceCredentials.generate()
        let decoded = try JSONDecoder().decode(DeviceCredentials.self, from: JSONEncoder().encode(credentials))
        #expect(decoded == credentials)
    }

    @Test func pairedCredentialsRoundTripThroughJSONWithTextualJIDs() throws {
        var credentials = try DeviceCredentials.generate()
        credentials.pairedAccount = PairedAccount(
            jid: .phoneNumber("12345678901", device: 17), lid: .lid("98765432109876", device: 17), account: [1, 2, 3],
            platform: "android", businessName: nil, pushName: "Alice")
        let json = try JSONEncoder().encode(credentials)
        let text = String(decoding: json, as: UTF8.self)
        #expect(text.contains("12345678901:17@s.whatsapp.net"))
        #expect(text.contains("98765432109876:17@lid"))
        let decoded = try JSONDecoder().decode(DeviceCredentials.self, from: json)
        #expect(decoded == credentials)
        #expect(decoded.isPaired)
    }

    @Test func pairedAccountWithoutLIDRoundTrips() throws {
        let account = PairedAccount(jid: .phoneNumber("12345678901", device: 3), lid: nil, account: [], platform: nil, businessName: nil)
        let decoded = try JSONDecoder().decode(PairedAccount.self, from: JSONEncoder().encode(account))
        #expect(decoded == account)
    }

    @Test func corruptJIDFailsToDecode() throws {
        let json = Data(#"{"jid":"a@b@c","account":[]}"#.utf8)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(PairedAccount.self, from: json) }
    }

    @Test func credentialStorePortCanBeImplemented() async throws {
        actor MemoryStore: CredentialStore {
            var stored: DeviceCredentials?
            func load() async throws -> DeviceCredentials? { stored }
            var preKeys: [PreKey] = []
            func save(_ credentials: DeviceCredentials) async throws { stored = credentials }
            func savePreKeys(_ keys: [PreKey]) async throws { preKeys += keys }
            func loadPreKeys() async throws -> [PreKey] { preKeys }
            func removePreKeys(_ ids: Set<UInt32>) async throws { preKeys.removeAll { ids.contains($0.id) } }
            func wipe() async throws {
                stored = nil
                preKeys = []
            }
        }
        let store = MemoryStore()
        let credentials = try DeviceCredentials.generate()
        #expect(try await store.load() == nil)
        try await store.save(credentials)
        #expect(try await store.load() == credentials)
        try await store.wipe()
        #expect(try await store.load() == nil)
    }
}
