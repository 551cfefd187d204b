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
        await server.stop()

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
        await server.stop()

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

    @Test(arguments: ["--to-database", "--to-files"])
    func aTenantThatCannotMoveLeavesNoCopyInTheDestination(_ direction: String) async throws {
        let rig = try await APIRig()
        defer { Task { await rig.stopAll() } }
        if ExternalTools.postgresEnabled { rig.databaseURL = try await makePostgresDatabase() }
        for name in ["torn", "clash"] { _ = try await rig.createTenant(name) }
        var services = try await openServices(rig)
        let rows = DatabaseCredentialStore(repository: services.store, masterKey: try MasterKey(base64: rig.masterKey), fences: nil)
        let (source, destination): (any CredentialFiles, any CredentialFiles) =
            direction == "--to-database" ? (services.credentials, rows) : (rows, services.credentials)
        let (torn, clash) = (try TenantName("torn"), try TenantName("clash"))
        func write(_ file: String, of tenant: TenantName, to store: any CredentialFiles) async throws {
            let instance = try await services.tenants.tenant(named: tenant)?.instanceID
            try await store.write(Array("\(tenant) \(file)".utf8), file: file, tenant: tenant, instanceID: instance)
        }
        // torn: two good records, then one that does not open; clash: the destination has its own 'b.json'.
        for file in ["a.json", "b.json"] {
            try await write(file, of: torn, to: source)
            try await write(file, of: clash, to: source)
        }
        try await source.storeSealed(Array(repeating: 7, count: 64), file: "c.json", tenant: torn)
        try await write("b.json", of: clash, to: destination)
        let clashOwn = try await destination.sealedBytes(file: "b.json", tenant: clash)
        let before = [torn: try await sealed(torn, in: source), clash: try await sealed(clash, in: source)]
        await services.close()

        let result = try await migrate(rig, direction)
        #expect(result.status == 1, "\(result.stdout) \(result.stderr)")
        #expect(result.stdout.contains("unreadable torn") && result.stdout.contains("2 copied records removed"), "\(result.stdout)")
        #expect(result.stdout.contains("conflict clash") && result.stdout.contains("1 copied record removed"), "\(result.stdout)")
        services = try await openServices(rig)
        let reopened = DatabaseCredentialStore(repository: services.store, masterKey: try MasterKey(base64: rig.masterKey), fences: nil)
        let (sourceAfter, destinationAfter): (any CredentialFiles, any CredentialFiles) =
            direction == "--to-database" ? (services.credentials, reopened) : (reopened, services.credentials)
        // The source is as it was; the destination holds none of the copies, only its own record.
        for tenant in [torn, clash] { #expect(try await sealed(tenant, in: sourceAfter) == before[tenant], "\(tenant) intact in the source") }
        #expect(try await destinationAfter.fileNames(of: torn).isEmpty)
        if direction == "--to-files" { #expect(!services.credentials.holdsFiles(tenant: torn), "no auth/torn directory left behind") }
        #expect(try await destinationAfter.fileNames(of: clash) == ["b.json"])
        #expect(try await destinationAfter.sealedBytes(file: "b.json", tenant: clash) == clashOwn)
        await services.close()
    }

    @Test func aFilesNodeRefusesCredentialsOnlyInTheDatabaseAndWarnsOfCopies() async throws {
        let rig = try await APIRig()
        defer { Task { await rig.stopAll() } }
        if ExternalTools.postgresEnabled { rig.databaseURL = try await makePostgresDatabase() }
        rig.extraEnvironment["WAHOST_CREDENTIALS"] = "files"
        let (rowsOnly, both) = (try TenantName("rowsonly"), try TenantName("both"))
        for tenant in [rowsOnly, both] { _ = try await rig.createTenant(tenant.rawValue) }
        var services = try await openServices(rig)
        var rows = DatabaseCredentialStore(repository: services.store, masterKey: try MasterKey(base64: rig.masterKey), fences: nil)
        for (tenant, stores) in [(rowsOnly, [rows]), (both, [rows, services.credentials] as [any CredentialFiles])] {
            let instance = try await services.tenants.tenant(named: tenant)?.instanceID
            for store in stores { try await store.write(Array("\(tenant)".utf8), file: "device.json", tenant: tenant, instanceID: instance) }
        }
        await services.close()

        // Credentials only in rows: a files node would see the session unpaired; it refuses and names the way out.
        let refused = try ServerProcess.start(
            arguments: ["serve", "--port", "\(try freePort())", "--data-dir", rig.dataDirectory], environment: rig.environment)
        defer { refused.signalStop() }
        try await eventually(timeout: .seconds(30), "serve exits") { !refused.process.isRunning }
        #expect(refused.process.terminationStatus == 1, "\(refused.output)")
        #expect(refused.output.contains("only in the database") && refused.output.contains("(rowsonly)"), "\(refused.output)")
        #expect(refused.output.contains("migrate-credentials --to-files") && refused.output.contains("--credentials database"))

        // Rows next to files are copies the node never reads: it starts, and warns.
        services = try await openServices(rig)
        rows = DatabaseCredentialStore(repository: services.store, masterKey: try MasterKey(base64: rig.masterKey), fences: nil)
        try await rows.wipe(tenant: rowsOnly)
        await services.close()
        let (server, _) = try await rig.startServer()
        #expect(server.output.contains("credential rows in the database next to their files under auth/ (both)"), "\(server.output)")
        await server.stop()
    }

    /// Every sealed record of `tenant` in `store`, by name.
    func sealed(_ tenant: TenantName, in store: any CredentialFiles) async throws -> [String: [UInt8]] {
        var records: [String: [UInt8]] = [:]
        for name in try await store.fileNames(of: tenant) { records[name] = try await store.sealedBytes(file: name, tenant: tenant) }
        return records
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
