import Crypto
import Tenancy

/// Seals and opens credential records with AES-256-GCM: the key is HKDF(master key, tenant, instance), the
/// associated data the tenant, instance and file name, so a record copied to another tenant or renamed fails to open.
public struct CredentialSealer: Sendable {
    let masterKey: MasterKey

    public init(masterKey: MasterKey) {
        self.masterKey = masterKey
    }

    static let magic: [UInt8] = Array("WAHC".utf8) + [1]
    static let nonceLength = 12
    static let tagLength = 16

    /// The sealed record: magic, nonce, ciphertext, tag.
    public func seal(_ contents: [UInt8], file: String, tenant: TenantName, instanceID: String?) throws(CredentialStoreError) -> [UInt8] {
        let key = masterKey.derivedKey(for: tenant, purpose: .credentials, instanceID: instanceID)
        do {
            let box = try AES.GCM.seal(contents, using: key, authenticating: Self.associatedData(tenant: tenant, instanceID: instanceID, file: file))
            return Self.magic + Array(box.nonce) + Array(box.ciphertext) + Array(box.tag)
        } catch {
            throw CredentialStoreError(.io, "cannot seal \(file): \(error)")
        }
    }

    /// The contents of a sealed record; throws if it is not one, or does not open as `file` of this tenant.
    public func open(_ bytes: [UInt8], file: String, tenant: TenantName, instanceID: String?) throws(CredentialStoreError) -> [UInt8] {
        let headerLength = Self.magic.count + Self.nonceLength
        guard bytes.count >= headerLength + Self.tagLength, Array(bytes.prefix(Self.magic.count)) == Self.magic else {
            throw CredentialStoreError(.corrupt, "credential file '\(file)' of tenant '\(tenant)' is truncated or not a wahost credential file")
        }
        let key = masterKey.derivedKey(for: tenant, purpose: .credentials, instanceID: instanceID)
        do {
            let box = try AES.GCM.SealedBox(
                nonce: AES.GCM.Nonce(data: bytes[Self.magic.count..<headerLength]),
                ciphertext: bytes[headerLength..<(bytes.count - Self.tagLength)],
                tag: bytes[(bytes.count - Self.tagLength)...])
            return Array(try AES.GCM.open(box, using: key, authenticating: Self.associatedData(tenant: tenant, instanceID: instanceID, file: file)))
        } catch {
            throw CredentialStoreError(
                .authenticationFailed,
                "credential file '\(file)' of tenant '\(tenant)' failed authentication: modified, truncated, renamed, moved from another tenant, or sealed under another master key"
            )
        }
    }

    static func associatedData(tenant: TenantName, instanceID: String?, file: String) -> [UInt8] {
        guard let instanceID else { return Array("wahost-credential-v1\u{0}\(tenant.rawValue)\u{0}\(file)".utf8) }
        return Array("wahost-credential-v2\u{0}\(tenant.rawValue)\u{0}\(instanceID)\u{0}\(file)".utf8)
    }
}
