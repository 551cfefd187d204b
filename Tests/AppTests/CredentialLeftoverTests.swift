import App
import Foundation
import Logging
import Storage
import Tenancy
import TestSupport
import Testing
import WhatsApp

/// Credentials never outlive their tenant: files are wiped before rows, and a name whose files remain cannot be reused.
@Suite struct CredentialLeftoverTests {
    @Test("a wipe that fails keeps the tenant (a retry finds it); leftover files make the name unusable until wiped")
    func deletionWipesFilesFirstAndLeftoversBlockTheName() async throws {
        let services = try await SecurityRulesTests.openServices()
        let acme = try TenantName("acme")
        _ = try await services.tenants.createTenant(acme, mfa: false, actor: "test")
        let store = TenantCredentialStore(tenant: acme, files: services.credentials)
        try await store.savePreKeys([])
        let directory = services.configuration.authDirectory + "/acme"
        let sealed = try Data(contentsOf: URL(fileURLWithPath: directory + "/prekeys.bin"))

        // Something the wipe cannot remove (a directory where files are expected): the delete fails, the tenant stays.
        try FileManager.default.createDirectory(atPath: directory + "/stuck", withIntermediateDirectories: false)
        await #expect(throws: (any Error).self) { try await services.deleteTenant(acme, actor: "test") }
        #expect(try await services.tenants.tenant(named: acme) != nil, "rows are deleted only after the files")
        try FileManager.default.removeItem(atPath: directory + "/stuck")
        try await services.deleteTenant(acme, actor: "test")
        #expect(try await services.tenants.tenant(named: acme) == nil)
        #expect(!FileManager.default.fileExists(atPath: directory))

        // Files of the old tenant put back (a failed wipe by an older version, a restored backup): no new tenant of that name.
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        try sealed.write(to: URL(fileURLWithPath: directory + "/prekeys.bin"))
        do {
            _ = try await services.tenants.createTenant(acme, mfa: false, actor: "test")
            Issue.record("a tenant was created over the old tenant's credential files")
        } catch {
            #expect(error.kind == .credentialsRemain)
        }
        // Deleting the name again wipes the leftovers (it reports that no tenant existed); then the name is free.
        await #expect(throws: (any Error).self) { try await services.deleteTenant(acme, actor: "test") }
        #expect(!FileManager.default.fileExists(atPath: directory))
        _ = try await services.tenants.createTenant(acme, mfa: false, actor: "test")
        await services.close()
    }

    @Test("a tenant deleted and re-created under the same name cannot open the old tenant's credential files")
    func recreatedTenantCannotOpenTheOldFiles() async throws {
        let services = try await SecurityRulesTests.openServices()
        let tenants = services.tenants
        let acme = try TenantName("acme")
        func store() -> TenantCredentialStore {
            TenantCredentialStore(tenant: acme, files: services.credentials, tenantRow: { try await tenants.tenant(named: acme) })
        }
        _ = try await tenants.createTenant(acme, mfa: false, actor: "test")
        try await store().savePreKeys([PreKey(id: 1, keyPair: .generate())])
        #expect(try await store().loadPreKeys().map(\.id) == [1])
        let path = services.configuration.authDirectory + "/acme/prekeys.bin"
        let sealed = try Data(contentsOf: URL(fileURLWithPath: path))

        try await services.deleteTenant(acme, actor: "test")
        await #expect(throws: CredentialStoreError.self) { try await store().loadPreKeys() }  // no tenant, no keys
        _ = try await tenants.createTenant(acme, mfa: false, actor: "test")
        // The old owner's file, back in the new tenant's directory (a restored backup, a copy made while it was live).
        try FileManager.default.createDirectory(atPath: services.configuration.authDirectory + "/acme", withIntermediateDirectories: true)
        try sealed.write(to: URL(fileURLWithPath: path))
        do {
            _ = try await store().loadPreKeys()
            Issue.record("the re-created tenant opened the old tenant's prekeys")
        } catch let error as CredentialStoreError {
            #expect(error.kind == .authenticationFailed)
        }
        await services.close()
    }

    @Test("tenants made before instance ids keep reading their files (name-only keys)")
    func tenantsWithoutInstanceIDStayReadable() async throws {
        let services = try await SecurityRulesTests.openServices()
        let legacy = Tenant(name: try TenantName("legacy"), createdAt: Date(), mfaEnabled: false)
        try await services.store.createTenant(legacy, adminTokenHash: "$argon2id$unused", otpSecret: nil)
        // Written as an earlier version did: keyed by the name alone.
        try await TenantCredentialStore(tenant: legacy.name, files: services.credentials).savePreKeys([PreKey(id: 7, keyPair: .generate())])
        let current = TenantCredentialStore(
            tenant: legacy.name, files: services.credentials, tenantRow: { try await services.tenants.tenant(named: legacy.name) })
        #expect(try await current.loadPreKeys().map(\.id) == [7])
        await services.close()
    }
}
