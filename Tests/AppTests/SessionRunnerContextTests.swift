import App
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import SessionPool
import Tenancy
import TestSupport
import Testing
import WhatsApp
import WhatsAppSimulator

/// A session started by an HTTP request belongs to the pool, not to the request: the HTTP server's graceful shutdown
/// leaves its WhatsApp connection alone, and only the pool's own stop ends it.
@Suite struct SessionRunnerContextTests {
    @Test func aSessionPairedThroughTheAPIKeepsItsConnectionUntilThePoolStops() async throws {
        let simulator = try WhatsAppSimulator()
        let url = try await simulator.start()
        let configuration = WahostConfiguration(
            port: 0, dataDirectory: try makeTemporaryDirectory(),
            masterKeyBase64: Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString(),
            whatsAppURL: url, whatsAppRootKeyHex: simulator.rootPublicKey.map { String(format: "%02x", $0) }.joined())
        let logger = Logger(label: "test")
        let services = try await WahostServices.open(configuration, logger: logger)
        let acme = try TenantName("acme")
        let issued = try await services.tenants.createTenant(acme, mfa: false, actor: "test")
        // The pool runs apart from the application, as `serve` runs it, so the server can stop while the pool runs on.
        let pool = try makeSessionPool(services: services, logger: logger)
        await pool.startMaintenance()
        let app = try buildApplication(services: services, pool: pool, logger: logger, runsPool: false)
        let user = try await app.test(.live) { client in
            // The QR request starts the session's runner: the request's task creates it.
            let qr = try await client.execute(uri: "/tenants/acme/session/qr", method: .get, headers: [.init("x-admin-token")!: issued.adminToken.text]) {
                try JSONSerialization.jsonObject(with: Data($0.body.readableBytesView)) as? [String: Any]
            }
            let jid = try await simulator.scanQRCode(try #require(qr?["qr"] as? String))
            try await eventually("acme connected") { await pool.status(of: acme).state == .connected }
            return String(jid.prefix { $0 != ":" && $0 != "@" })
        }
        // The HTTP server has shut down gracefully. A runner holding the request's task-locals would have had its
        // WebSocket closed by that shutdown, and every reconnect closed as it opened; give such a close time to land.
        try await Task.sleep(for: .seconds(1))
        #expect(await pool.status(of: acme).state == .connected)
        #expect(try await pool.groups(for: acme).map(\.id) == WhatsAppSimulator.groupFixture.map(\.id), "the connection still answers")
        let observed = await simulator.observed
        #expect(observed.logins[user] == 1 && observed.liveConnections[user] == 1, "never dropped, never reconnected")

        await pool.shutdown()
        try await eventually("the pool's stop ends the connection") { await simulator.observed.liveConnections[user] == 0 }
        await services.close()
        await simulator.stop()
    }
}
