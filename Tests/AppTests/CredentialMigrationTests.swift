import App
import Foundation
import Logging
import Storage
import Tenancy
import TestSupport
import Testing
import WhatsAppSimulator

/// `wahost migrate-credentials` moves paired sessions between `auth/` files and database rows, finishing what an
/// interrupted run left, and every session logs in afterwards without pairing again.
@Suite struct CredentialMigrationTests {
    @Test func credentialsMoveToTheDatabaseAndBackAndSessionsLogInWithoutPairing() async throws {
        let rig = try await APIRig()
        defer { Task { await rig.stopAll() } }
        if ExternalTools.postgresEnabled { rig.databaseURL = try await makePostgresDatabase() }
        rig.extraEnvironment["WAHOST_CREDENTIALS"] = "files"
        let names = ["m1", "m2", "m3"]
        var tokens: [String: String] = [:]
        for name in names { tokens[name] = try await rig.createTenant(name).token }
        var (server, port) = try await rig.startServer()
        for name in names { _ = try await pairByQR(rig, port: port, tenant: name, token: tokens[name]!) }
        try await eventually("prekeys stored") { names.allSatisfy { FileManager.default.fileExists(atPath: rig.dataDirectory + "/auth/\($0)/prekeys.bin") } }

        let busy = try await migrate(rig, "--to-database")
        #expect(busy.status == 1 && busy.stderr.contains("stop every node"), "\(busy.stderr)")
        await server.stopDetached()

        // A node keeping credentials in the database refuses to start while they are still in files.
        let refused = try await WahostBinary.runDetached(
            ["serve", "--port", "\(try freePort())", "--data-dir", rig.dataDirectory], environment: rig.environment.merging(["WAHOST_CREDENTIALS": "database"]) { $1 })
        #expect(refused.status == 1 && refused.stderr.contains("migrate-credentials --to-database"), "\(refused.stderr)")

        // An earlier run was interrupted: m1 copied but not removed, m2 copied and half removed.
        let services = try await openServices(rig)
        let rows = DatabaseCredentialStore(repository: services.store, masterKey: try MasterKey(base64: rig.masterKey), fences: nil)
        for name in ["m1", "m2"] {
            let tenant = try TenantName(name)
            for file in services.credentials.files(tenant: tenant) {
                try await rows.storeSealed(try #require(try services.credentials.sealedBytes(file: file, tenant: tenant)), file: file, tenant: tenant)
            }
        }
        try services.credentials.delete(file: "device.json", tenant: try TenantName("m2"))
        await services.close()

        let toDatabase = try await migrate(rig, "--to-database")
        #expect(toDatabase.status == 0, "\(toDatabase.stdout) \(toDatabase.stderr)")
        for name in names { #expect(toDatabase.stdout.contains("moved \(name) ("), "\(toDatabase.stdout)") }
        #expect(toDatabase.stdout.contains("done: 3 tenant(s) moved to-database, 0 left behind"))
        for name in names { #expect(!FileManager.default.fileExists(atPath: rig.dataDirectory + "/auth/\(name)"), "auth/\(name) removed") }
        let again = try await migrate(rig, "--to-database")
        #expect(again.status == 0 && again.stdout.contains("done: 0 tenant(s) moved"), "a second run finds nothing to do")

        rig.extraEnvironment["WAHOST_CREDENTIALS"] = "database"
        (server, port) = try await rig.startServer()
        for name in names { try await eventually("\(name) connected from the database") { try await isConnected(port, name) } }
        await server.stopDetached()

        let toFiles = try await migrate(rig, "--to-files")
        #expect(toFiles.status == 0, "\(toFiles.stdout) \(toFiles.stderr)")
        #expect(toFiles.stdout.contains("done: 3 tenant(s) moved to-files, 0 left behind"), "\(toFiles.stdout)")
        rig.extraEnvironment["WAHOST_CREDENTIALS"] = "files"
        (server, port) = try await rig.startServer()
        for name in names { try await eventually("\(name) connected from files again") { try await isConnected(port, name) } }
        let observed = await rig.simulator.observed
        #expect(observed.registrations == names.count, "no session paired again")
        await rig.stopAll()
    }

    @Test func aRecordThatDoesNotOpenIsLeftWhereItIs() async throws {
        let rig = try await APIRig()
        defer { Task { await rig.stopAll() } }
        _ = try await rig.createTenant("bad")
        let services = try await openServices(rig)
        try services.credentials.storeSealed(Array(repeating: 7, count: 64), file: "device.json", tenant: try TenantName("bad"))
        await services.close()
        let result = try await migrate(rig, "--to-database")
        #expect(result.status == 1 && result.stdout.contains("unreadable bad"), "\(result.stdout)")
        #expect(FileManager.default.fileExists(atPath: rig.dataDirectory + "/auth/bad/device.json"))
        let usage = try await WahostBinary.runDetached(["migrate-credentials", "--data-dir", rig.dataDirectory], environment: rig.environment)
        #expect(usage.status != 0 && usage.stderr.contains("--to-database"))
    }

    func migrate(_ rig: APIRig, _ direction: String) async throws -> ProcessResult {
        try await WahostBinary.runDetached(["migrate-credentials", direction, "--data-dir", rig.dataDirectory], environment: rig.environment)
    }

    /// The rig's storage opened in this process, while no `serve` runs.
    func openServices(_ rig: APIRig) async throws -> WahostServices {
        try await WahostServices.open(
            WahostConfiguration(dataDirectory: rig.dataDirectory, databaseURL: rig.databaseURL, masterKeyBase64: rig.masterKey),
            logger: Logger(label: "test"))
    }
}
