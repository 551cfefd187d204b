import App
import ArgumentParser
import Foundation
import Hummingbird
import Logging
import Synchronization
import Tenancy
import Webhooks

/// `webhooks --count N --per-tenant M`: N tenants, each with a webhook to one local receiver in this process; N × M
/// events are appended to their logs (the way `serve` stores events) while `serve` delivers them. Measures deliveries
/// per second from the first append to the last delivery, and `serve`'s memory while the backlog is in the database.
struct Webhooks: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Webhook delivery throughput from N tenants to one local receiver.")

    @Option(help: "Tenants, each with a webhook.") var count = 100
    @Option(help: "Events appended per tenant.") var perTenant = 20
    @Option(help: "Events appended per transaction.") var batch = 500

    func run() async throws {
        let received = Mutex(0)
        let router = Router()
        router.post("hook") { request, _ -> Response in
            _ = try await request.body.collect(upTo: 1 << 20)
            received.withLock { $0 += 1 }
            return Response(status: .ok)
        }
        let receiverPort = try freeLoopbackPort()
        var quiet = Logger(label: "bench.receiver")
        quiet.logLevel = .error
        let receiver = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: receiverPort)), logger: quiet)
        let receiverTask = Task { try await receiver.runService(gracefulShutdownSignals: []) }
        defer { receiverTask.cancel() }

        let rig = try await BenchRig(count: count)
        defer { rig.stop() }
        var logger = Logger(label: "wahost.bench")
        logger.logLevel = .error
        var configuration = WahostConfiguration(dataDirectory: rig.directory, masterKeyBase64: rig.masterKey)
        configuration.allowPrivateWebhooks = true
        let services = try await WahostServices.open(configuration, logger: logger)
        let names = try rig.tokens.map { try TenantName($0.0) }
        for name in names {
            _ = try await services.webhooks.put(for: name, url: "http://127.0.0.1:\(receiverPort)/hook", events: nil)
        }
        let server = try await rig.startServer(extraEnvironment: ["WAHOST_ALLOW_PRIVATE_WEBHOOKS": "1"])

        // The events `serve` would store for received messages, interleaved across tenants, in large transactions.
        let total = count * perTenant
        let data = #"{"id":"3EB0BENCH","chat":"15550000001@s.whatsapp.net","from":"15550000001@s.whatsapp.net","text":"hello from the bench"}"#
        let start = ContinuousClock.now
        var pending: [NewTenantEvent] = []
        for round in 0..<perTenant {
            for name in names {
                pending.append(NewTenantEvent(tenant: name, type: "message", at: Date(), data: data, dedupeKey: "bench:\(round)"))
                if pending.count >= batch {
                    _ = try await services.store.appendEvents(pending)
                    pending = []
                }
            }
        }
        if !pending.isEmpty { _ = try await services.store.appendEvents(pending) }
        let appended = seconds(ContinuousClock.now - start)
        let backlogMemory = try memoryBytes(pid: server.process.pid)
        let deadline = ContinuousClock.now + .seconds(600)
        while received.withLock({ $0 }) < total, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        let elapsed = seconds(ContinuousClock.now - start)
        let delivered = received.withLock { $0 }
        let memory = try memoryBytes(pid: server.process.pid)
        await services.close()
        printJSONLine([
            "benchmark": "webhooks", "tenants": count, "events": total, "delivered": delivered, "append_seconds": (appended * 100).rounded() / 100,
            "seconds": (elapsed * 100).rounded() / 100, "deliveries_per_second": elapsed > 0 ? (Double(delivered) / elapsed).rounded() : 0,
            "rss_bytes_during_backlog": backlogMemory.rss, "rss_bytes_after": memory.rss, "hwm_bytes": memory.hwm,
        ])
        guard delivered >= total else { throw BenchError("only \(delivered) of \(total) deliveries arrived within 600 s") }
    }
}
