import Crypto
import Foundation
import Hummingbird
import Logging
import Synchronization
import TestSupport
import Testing
import WhatsAppSimulator

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A local webhook receiver: answers 200 (recording what it got), 500, or nothing; stopped, it refuses connections.
final class WebhookReceiver: Sendable {
    enum Mode { case accept, fail, hang }
    struct Delivery {
        let headers: [String: String]
        let body: Data
        var object: [String: Any] { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:] }
    }

    let port: Int
    let mode = Mutex(Mode.accept)
    let received = Mutex<[Delivery]>([])
    /// How long an accepted request takes to answer.
    let delay = Mutex(Duration.zero)
    /// Requests being answered per tenant, and the most one tenant ever had at once.
    let inFlight = Mutex<(now: [String: Int], peak: Int)>(([:], 0))
    private let running = Mutex<Task<Void, any Error>?>(nil)

    init() throws { port = try freePort() }

    var deliveries: [Delivery] { received.withLock { $0 } }

    func start() async throws {
        let router = Router()
        router.post("hook") { request, _ -> Response in
            let mode = self.mode.withLock { $0 }
            // A hung request never counts as received: the sender gave up on it.
            while mode == .hang, self.mode.withLock({ $0 }) == .hang { try await Task.sleep(for: .milliseconds(100)) }
            let body = try await request.body.collect(upTo: 1 << 20)
            guard mode == .accept else { return Response(status: .internalServerError) }
            let tenant = ((try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any])?["tenant"] as? String ?? ""
            self.inFlight.withLock { state in
                state.now[tenant, default: 0] += 1
                state.peak = max(state.peak, state.now[tenant] ?? 0)
            }
            defer { self.inFlight.withLock { $0.now[tenant, default: 1] -= 1 } }
            let delay = self.delay.withLock { $0 }
            if delay > .zero { try await Task.sleep(for: delay) }
            var headers: [String: String] = [:]
            for field in request.headers { headers[field.name.canonicalName] = field.value }
            self.received.withLock { $0.append(Delivery(headers: headers, body: Data(body.readableBytesView))) }
            return Response(status: .ok)
        }
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)), logger: Logger(label: "receiver"))
        running.withLock { $0 = Task { try await app.runService(gracefulShutdownSignals: []) } }
        try await eventually("receiver listening") {
            (try? await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(self.port)/")!)) != nil
        }
    }

    func stop() async {
        let task = running.withLock { $0 }
        task?.cancel()
        _ = await task?.result
    }
}

/// Webhooks through a real `wahost serve`: signed deliveries of inbound messages, an outage ridden out in order, a
/// `kill -9` with deliveries pending, dead letters re-delivered on request; and the address classes refused.
@Suite(.serialized) struct WebhookTests {
    func messageIDs(_ receiver: WebhookReceiver) -> [String] {
        receiver.deliveries.filter { $0.headers["x-wahost-event"] == "message" }.compactMap { ($0.object["data"] as? [String: Any])?["id"] as? String }
    }

    @Test func deliveriesAreSignedOrderedAndSurviveOutagesAndCrashes() async throws {
        let rig = try await APIRig()
        defer { Task { await rig.stopAll() } }
        rig.extraEnvironment["WAHOST_ALLOW_PRIVATE_WEBHOOKS"] = "1"
        rig.extraEnvironment["WAHOST_WEBHOOK_BACKOFF_CAP_SECONDS"] = "2"
        let receiver = try WebhookReceiver()
        try await receiver.start()
        let (token, _) = try await rig.createTenant("acme")
        var (server, port) = try await rig.startServer()
        let auth = ["x-admin-token": token]

        let put = try await http(
            "PUT", port, "/tenants/acme/webhook", headers: auth,
            body: Data(#"{"url": "http://127.0.0.1:\#(receiver.port)/hook", "events": ["message", "session"]}"#.utf8))
        #expect(put.status == 200, "\(put.text)")
        let secret = try #require(put.object["secret"] as? String)
        #expect(secret.hasPrefix("whsec_") && secret.count >= 40)
        let shown = try await http("GET", port, "/tenants/acme/webhook", headers: auth)
        #expect(shown.object["url"] as? String == "http://127.0.0.1:\(receiver.port)/hook" && shown.object["secret"] == nil)

        // A received message arrives signed; the signature checks out with our own HMAC.
        let account = try await pairByQR(rig, port: port, tenant: "acme", token: token)
        try await eventually("prekeys uploaded") { await rig.simulator.observed.preKeys[account] ?? 0 > 0 }
        let first = try await rig.simulator.sendText(from: "15557770001", to: account, text: "hello hook")
        try await eventually("the message delivered") { self.messageIDs(receiver) == [first] }
        let delivery = try #require(receiver.deliveries.first { $0.headers["x-wahost-event"] == "message" })
        let timestamp = try #require(delivery.headers["x-wahost-timestamp"])
        let mac = HMAC<SHA256>.authenticationCode(for: Data((timestamp + ".").utf8) + delivery.body, using: SymmetricKey(data: Data(secret.utf8)))
        #expect(delivery.headers["x-wahost-signature"] == "sha256=" + mac.map { String(format: "%02x", $0) }.joined())
        #expect(delivery.headers["content-type"] == "application/json" && delivery.headers["x-wahost-delivery"] == delivery.object["id"] as? String)
        #expect(delivery.object["tenant"] as? String == "acme" && delivery.object["type"] as? String == "message")
        #expect((delivery.object["data"] as? [String: Any])?["text"] as? String == "hello hook")
        #expect(receiver.deliveries.contains { $0.headers["x-wahost-event"] == "session" }, "session events too")
        #expect(!receiver.deliveries.contains { $0.headers["x-wahost-event"] == "receipt" }, "receipts were not asked for")

        // The receiver records a request before its 200 goes out: stopped before the sender read it, it gets the
        // delivery again (at least once, as documented). Only a delivery the server has settled is done.
        func settled() async throws -> Bool {
            for status in ["pending", "failed"] {
                let list = try await http("GET", port, "/tenants/acme/webhook/deliveries?status=\(status)", headers: auth)
                guard list.status == 200, (list.object["deliveries"] as? [Any])?.isEmpty == true else { return false }
            }
            return true
        }
        try await eventually("the first deliveries settled") { try await settled() }

        // Down for a minute: refusing connections, then answering 500, then hanging past the timeout.
        await receiver.stop()
        var sent = [first]
        sent.append(try await rig.simulator.sendText(from: "15557770001", to: account, text: "during refusal"))
        try await Task.sleep(for: .seconds(20))
        receiver.mode.withLock { $0 = .fail }
        try await receiver.start()
        sent.append(try await rig.simulator.sendText(from: "15557770001", to: account, text: "during 500s"))
        try await Task.sleep(for: .seconds(20))
        let failing = try await http("GET", port, "/tenants/acme/webhook/deliveries?status=failed", headers: auth)
        let failed = try #require((failing.object["deliveries"] as? [[String: Any]])?.first)
        #expect(failed["last_error"] as? String == "HTTP 500" && (failed["attempts"] as? Int ?? 0) >= 2, "\(failing.text)")
        receiver.mode.withLock { $0 = .hang }
        sent.append(try await rig.simulator.sendText(from: "15557770001", to: account, text: "during the hang"))
        try await Task.sleep(for: .seconds(20))
        receiver.mode.withLock { $0 = .accept }
        try await eventually(timeout: .seconds(40), "every message after the outage") { self.messageIDs(receiver).count >= sent.count }
        #expect(messageIDs(receiver) == sent)
        let ids = receiver.deliveries.compactMap { ($0.object["id"] as? String).flatMap(Int.init) }
        #expect(ids == ids.sorted() && Set(ids).count == ids.count, "in log order, none twice: \(ids)")
        try await eventually("the outage's deliveries settled") { try await settled() }

        // kill -9 with deliveries pending: all of them arrive after the restart.
        receiver.mode.withLock { $0 = .fail }
        sent.append(try await rig.simulator.sendText(from: "15557770001", to: account, text: "before the crash 1"))
        sent.append(try await rig.simulator.sendText(from: "15557770001", to: account, text: "before the crash 2"))
        try await eventually("both pending") {
            let pending = try await http("GET", port, "/tenants/acme/webhook/deliveries?status=pending", headers: auth)
            let failed = try await http("GET", port, "/tenants/acme/webhook/deliveries?status=failed", headers: auth)
            return ((pending.object["deliveries"] as? [Any])?.count ?? 0) + ((failed.object["deliveries"] as? [Any])?.count ?? 0) >= 2
        }
        await server.kill()
        receiver.mode.withLock { $0 = .accept }
        (server, port) = try await rig.startServer()
        try await eventually(timeout: .seconds(30), "delivered after the restart") { self.messageIDs(receiver) == sent }

        // Dead letters: a delivery failing past the retry time is listed as dead and re-delivered on request.
        await server.stop()
        rig.extraEnvironment["WAHOST_WEBHOOK_RETRY_HOURS"] = "0.001"
        (server, port) = try await rig.startServer()
        try await eventually("connected again") { try await isConnected(port, "acme") }
        receiver.mode.withLock { $0 = .fail }
        let doomed = try await rig.simulator.sendText(from: "15557770001", to: account, text: "dead letter")
        var deadID = 0
        try await eventually("the doomed message logged") {
            let log = try await http("GET", port, "/tenants/acme/events?limit=1000", headers: auth.merging(["accept": "application/json"]) { $1 })
            deadID = (log.object["events"] as? [[String: Any]])?.first { ($0["data"] as? [String: Any])?["id"] as? String == doomed }?["id"] as? Int ?? 0
            return deadID > 0
        }
        try await eventually(timeout: .seconds(30), "dead-lettered") {
            let dead = try await http("GET", port, "/tenants/acme/webhook/deliveries?status=dead", headers: auth)
            return (dead.object["deliveries"] as? [[String: Any]])?.contains { $0["id"] as? Int == deadID } == true
        }
        receiver.mode.withLock { $0 = .accept }
        let later = try await rig.simulator.sendText(from: "15557770001", to: account, text: "after the dead one")
        try await eventually("later events are not held back by a dead one") { self.messageIDs(receiver).last == later }
        let retry = try await http("POST", port, "/tenants/acme/webhook/deliveries/\(deadID)/retry", headers: auth)
        #expect(retry.status == 202, "\(retry.text)")
        try await eventually("the dead one re-delivered") { self.messageIDs(receiver).last == doomed }
        #expect(try await http("POST", port, "/tenants/acme/webhook/deliveries/\(deadID)/retry", headers: auth).status == 404)

        // Replay from an event id.
        let before = receiver.deliveries.count
        let replay = try await http("POST", port, "/tenants/acme/webhook/redeliver?after=\(deadID - 1)", headers: auth)
        #expect(replay.status == 202)
        try await eventually("replayed") { receiver.deliveries.count > before }
        let metrics = try await http("GET", port, "/metrics").text
        #expect(metrics.contains(#"wahost_webhook_deliveries_total{result="success"}"#) && metrics.contains(#"wahost_webhook_deliveries_total{result="dead"}"#))
        #expect(!server.output.contains(secret) && !metrics.contains(secret), "the secret is never logged")
        #expect(try await http("DELETE", port, "/tenants/acme/webhook", headers: auth).status == 200)
        #expect(try await http("GET", port, "/tenants/acme/webhook", headers: auth).status == 404)
        await receiver.stop()
    }

    /// This machine's host name when it resolves to a loopback or private address (as /etc/hosts usually says).
    static func nameResolvingLocally() throws -> String? {
        let name = ProcessInfo.processInfo.hostName
        guard let answer = try? runProcess("/usr/bin/getent", ["hosts", name]).stdout else { return nil }
        let address = answer.split(separator: " ").first.map(String.init) ?? ""
        return ["127.", "10.", "192.168.", "172.", "::1", "fd", "fe80"].contains { address.hasPrefix($0) } ? name : nil
    }

    @Test func privateAndLocalAddressesAreRefusedWithoutTheFlag() async throws {
        let rig = try await APIRig()
        defer { Task { await rig.stopAll() } }
        let (token, _) = try await rig.createTenant("acme")
        let (_, port) = try await rig.startServer()
        let auth = ["x-admin-token": token]
        func put(_ url: String) async throws -> HTTPResult {
            try await http("PUT", port, "/tenants/acme/webhook", headers: auth, body: Data(#"{"url": "\#(url)"}"#.utf8))
        }
        for url in [
            "http://127.0.0.1/h", "http://127.8.9.10:8080/h", "http://[::1]/h", "http://10.1.2.3/h", "http://172.16.0.1/h", "http://172.31.255.254/h",
            "http://192.168.1.1/h", "http://169.254.169.254/latest/meta-data", "http://[fd00::1]/h", "http://[::ffff:127.0.0.1]/h",
            "http://localhost/h", "http://localhost./h", "https://0.0.0.0/h",
        ] + (try Self.nameResolvingLocally().map { ["http://\($0):8080/h"] } ?? []) {
            let result = try await put(url)
            #expect(result.status == 400 && result.errorCode == "webhook_url_forbidden", "\(url): \(result.text)")
        }
        for url in ["ftp://example.com/h", "https://user:pass@example.com/h", "not a url", "https:///h"] {
            let result = try await put(url)
            #expect(result.status == 400 && result.errorCode == "webhook_url_invalid", "\(url): \(result.text)")
        }
        let badEvents = try await http(
            "PUT", port, "/tenants/acme/webhook", headers: auth, body: Data(#"{"url": "https://93.184.216.34/h", "events": ["everything"]}"#.utf8))
        #expect(badEvents.status == 400 && badEvents.errorCode == "invalid_events")
        #expect(try await put("https://93.184.216.34/h").status == 200, "a public address is fine")
    }
}
