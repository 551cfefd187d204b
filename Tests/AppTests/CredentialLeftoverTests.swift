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
}
