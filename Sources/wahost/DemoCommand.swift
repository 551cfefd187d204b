import App
import ArgumentParser
import Foundation
import Hummingbird
import Logging
import Tenancy
import WhatsAppSimulator

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run wahost against the built-in WhatsApp simulator, with a demo tenant: try pairing, groups and logout without a phone.",
        discussion: """
            The dashboard shows a DEMO MODE banner and a "scan with the simulated phone" button. Nothing connects to WhatsApp.
            Data lives in --data-dir (default ./demo-data), never in the data directory `serve` uses by default.
            """)

    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on.") var port = 8080
    @Option(name: .customLong("data-dir"), help: "Directory for the demo's system.db and auth/.") var dataDirectory = "demo-data"

    func run() async throws {
        var logger = Logger(label: "wahost.demo")
        logger.logLevel = ProcessInfo.processInfo.environment["WAHOST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
        var simulatorLogger = logger
        simulatorLogger.logLevel = .warning
        let simulator = try WhatsAppSimulator(logger: simulatorLogger)
        let url = try await simulator.start()

        try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
        let identity = try NodeIdentity.claim(dataDirectory: dataDirectory, requested: nil, base: "demo")
        let configuration = WahostConfiguration(
            host: host, port: port, dataDirectory: dataDirectory, nodeID: identity.nodeID, whatsAppURL: url,
            whatsAppRootKeyHex: simulator.rootPublicKey.map { String(format: "%02x", $0) }.joined())
        let services = try await WahostServices.open(configuration, logger: logger)
        let demo = try TenantName("demo")
        let token: String
        if try await services.tenants.tenant(named: demo) == nil {
            token = try await services.tenants.createTenant(demo, mfa: false, actor: "demo").adminToken.text
        } else {
            token = try await services.tenants.rotateAdminToken(for: demo, actor: "demo").text
        }
        let operatorToken = try await services.tenants.issueOperatorToken(actor: "demo").text
        print(
            """

            wahost DEMO MODE: WhatsApp is the built-in simulator; no real phone can be linked.
              dashboard:       http://\(host):\(port)/dashboard/
              tenant:          demo
              admin token:     \(token)
              operator token:  \(operatorToken)
            Sign in as tenant "demo", press "Show a QR code", then "Scan with the simulated phone".

            """)
        fflush(nil)
        let pool = try makeSessionPool(services: services, logger: logger)
        let app = try buildApplication(services: services, pool: pool, logger: logger) { qr in
            _ = try await simulator.scanQRCode(qr)
        }
        do {
            try await app.runService()
        } catch {
            await services.close()
            await simulator.stop()
            throw error
        }
        await services.close()
        await simulator.stop()
        withExtendedLifetime(identity) {}
    }
}
