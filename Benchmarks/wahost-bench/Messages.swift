import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import WhatsAppSimulator

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `messages --count N`: N paired sessions in one `wahost serve`; the simulator's peers send them texts at a paced
/// rate (inbound: decrypt → durable event → ack), then each session sends texts back through the API (outbound).
struct Messages: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Inbound and outbound message throughput and latency across N sessions of one `wahost serve`.")

    @Option(help: "Sessions to create and pair.") var count = 100
    @Option(help: "Inbound texts per session.") var perSession = 5
    @Option(help: "Inbound texts per second the simulator sends (paced).") var rate = 2_000
    @Option(help: "Outbound texts per session (through POST /tenants/{tenant}/messages).") var outboundPerSession = 2
    @Option(help: "Pairings and outbound requests in flight at once.") var concurrency = 64
    @Flag(help: "The simulator's peers read each outbound text as it arrives, inside the measured time (by default they read them all after it, as they encrypt the inbound texts before it).")
    var peersReadDuringOutbound = false

    func run() async throws {
        let rig = try await BenchRig(count: count)
        defer { rig.stop() }
        let server = try await rig.startServer()
        _ = try await rig.pairAll(port: server.port, concurrency: concurrency)
        _ = try await rig.waitConnected()
        try await rig.waitForPreKeys()

        // Inbound: the ack reaches the simulator only after the event is stored, so send→ack bounds the event latency.
        let cpuBeforeInbound = try cpuSeconds(pid: server.process.pid)
        let simulatorCPUBefore = try cpuSeconds(pid: rig.simulator.pid)
        let (status, started) = try await request("POST", rig.control + "/load", body: ["perAccount": perSession, "rate": rate])
        guard status == 200, let queued = started["queued"] as? Int else { throw BenchError("load did not start: \(status) \(started)") }
        var report: [String: Any] = [:]
        let deadline = ContinuousClock.now + .seconds(600)
        while ContinuousClock.now < deadline {
            (_, report) = try await request("GET", rig.control + "/load")
            if report["acked"] as? Int == queued { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        let acked = report["acked"] as? Int ?? 0
        let inboundSeconds = report["seconds"] as? Double ?? 0

        let inboundCPU = try cpuSeconds(pid: server.process.pid) - cpuBeforeInbound
        let simulatorInboundCPU = try cpuSeconds(pid: rig.simulator.pid) - simulatorCPUBefore

        // Outbound: each session answers its peer (an established session: one `msg` per text).
        if !peersReadDuringOutbound { try await peerReading(deferred: true, rig) }
        let peersBefore = try await peerCounters(rig)
        let outboundStart = ContinuousClock.now
        let benchCPUBefore = try cpuSeconds(pid: getpid())
        let sent = try await sendAll(rig, port: server.port)
        let benchOutboundCPU = try cpuSeconds(pid: getpid()) - benchCPUBefore
        let outboundSeconds = seconds(ContinuousClock.now - outboundStart)
        let outboundCPU = try cpuSeconds(pid: server.process.pid) - cpuBeforeInbound - inboundCPU
        let simulatorOutboundCPU = try cpuSeconds(pid: rig.simulator.pid) - simulatorCPUBefore - simulatorInboundCPU
        let memory = try memoryBytes(pid: server.process.pid)
        // Every text must be sent, reach its peer and decrypt, whenever the peers read it; `serve`'s CPU for the
        // receipts that come back after the clock is measured until it is quiet again.
        let cpuBeforeReceipts = try cpuSeconds(pid: server.process.pid)
        if !peersReadDuringOutbound { try await peerReading(deferred: false, rig) }
        let receiptsCPU = try await cpuUntilQuiet(pid: server.process.pid) - cpuBeforeReceipts
        let peersAfter = try await peerCounters(rig)
        let (read, unreadable) = (peersAfter.read - peersBefore.read, peersAfter.unreadable - peersBefore.unreadable)
        guard sent == count * outboundPerSession, read == sent, unreadable == 0 else {
            throw BenchError("\(sent) of \(count * outboundPerSession) texts sent, the peers read \(read), \(unreadable) unreadable")
        }
        printJSONLine([
            "benchmark": "messages", "count": count, "inbound_messages": queued, "inbound_acked": acked,
            "inbound_per_second": inboundSeconds > 0 ? (Double(acked) / inboundSeconds).rounded() : 0, "inbound_rate_offered": rate,
            "latency_p50_ms": ((report["latencyP50Milliseconds"] as? Double ?? 0) * 10).rounded() / 10,
            "latency_p99_ms": ((report["latencyP99Milliseconds"] as? Double ?? 0) * 10).rounded() / 10,
            "latency_max_ms": ((report["latencyMaxMilliseconds"] as? Double ?? 0) * 10).rounded() / 10,
            "outbound_messages": count * outboundPerSession, "outbound_sent": sent, "outbound_read_by_peers": read,
            "outbound_peers_read_during_clock": peersReadDuringOutbound,
            // `serve`'s CPU for what came after the clock (the peers' receipts when they read after it), per text.
            "outbound_after_clock_cpu_ms_per_message": sent > 0 ? (receiptsCPU * 1e5 / Double(sent)).rounded() / 100 : 0,
            "outbound_per_second": outboundSeconds > 0 ? (Double(sent) / outboundSeconds).rounded() : 0,
            "rss_bytes": memory.rss, "rss_per_session_bytes": count > 0 ? memory.rss / count : 0,
            // CPU of `serve` per message (the machine may be shared: this is steadier than the rates), and its load.
            "inbound_cpu_ms_per_message": acked > 0 ? (inboundCPU * 1e5 / Double(acked)).rounded() / 100 : 0,
            "outbound_cpu_ms_per_message": sent > 0 ? (outboundCPU * 1e5 / Double(sent)).rounded() / 100 : 0,
            // The simulator's share (its peers encrypt before the clock starts, and decrypt what wahost sends).
            "simulator_inbound_cpu_seconds": (simulatorInboundCPU * 100).rounded() / 100,
            "simulator_outbound_cpu_ms_per_message": sent > 0 ? (simulatorOutboundCPU * 1e5 / Double(sent)).rounded() / 100 : 0,
            // The bench's own HTTP client during the outbound phase.
            "bench_outbound_cpu_ms_per_message": sent > 0 ? (benchOutboundCPU * 1e5 / Double(sent)).rounded() / 100 : 0,
            "load_average_1m": (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)).flatMap { Double($0.split(separator: " ")[0]) } ?? 0,
        ])
    }

    /// Tells the simulator's peers to keep what accounts send them unread (`deferred`), or to read all they kept;
    /// a text read with no live connection of its account to take the receipt fails the run.
    private func peerReading(deferred: Bool, _ rig: BenchRig) async throws {
        let (status, answer) = try await request("POST", rig.control + "/load/peer-reading", body: ["deferred": deferred], timeout: 600)
        guard status == 200, answer["unanswered"] as? Int == 0 else { throw BenchError("peer-reading: \(status) \(answer)") }
    }

    /// How many texts from accounts the simulator's peers read, and could not read, so far.
    private func peerCounters(_ rig: BenchRig) async throws -> (read: Int, unreadable: Int) {
        let (status, state) = try await request("GET", rig.control + "/state")
        guard status == 200, let read = state["messagesReceivedByPeers"] as? Int, let unreadable = state["undecryptableByPeers"] as? Int else {
            throw BenchError("simulator state: \(status)")
        }
        return (read, unreadable)
    }

    /// The CPU seconds of `pid` once it used under 10 % of a core over a quarter second (at most 30 s from now).
    private func cpuUntilQuiet(pid: Int32) async throws -> Double {
        var last = try cpuSeconds(pid: pid)
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(250))
            let now = try cpuSeconds(pid: pid)
            defer { last = now }
            if now - last < 0.025 { return now }
        }
        return last
    }

    /// Sends `outboundPerSession` texts from every session to its load peer; returns how many were acknowledged.
    /// The requests go through AsyncHTTPClient with a connection per request in flight: the bench's client must not be
    /// what limits the rate (URLSession on Linux holds few connections per host and costs more CPU per request).
    private func sendAll(_ rig: BenchRig, port: Int) async throws -> Int {
        let jobs = rig.tokens.enumerated().flatMap { index, tenant in (0..<outboundPerSession).map { (tenant.0, tenant.1, index, $0) } }
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: concurrency)
        configuration.timeout = .init(connect: .seconds(10), read: .seconds(60))
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        let sent: Int
        do {
            sent = try await withThrowingTaskGroup(of: Bool.self) { group in
                var next = 0
                var sent = 0
                func add() {
                    guard next < jobs.count else { return }
                    let (name, token, index, number) = jobs[next]
                    next += 1
                    group.addTask {
                        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/tenants/\(name)/messages")
                        request.method = .POST
                        request.headers.add(name: "x-admin-token", value: token)
                        request.headers.add(name: "content-type", value: "application/json")
                        let body = #"{"to":"\#(WhatsAppSimulator.loadPeer(index))","text":"reply \#(number)"}"#
                        request.body = .bytes(ByteBuffer(string: body))
                        let response = try await client.execute(request, timeout: .seconds(60))
                        let answer = try await response.body.collect(upTo: 1 << 16)
                        if response.status.code != 201 { FileHandle.standardError.write(Data("send: \(response.status.code) \(String(buffer: answer))\n".utf8)) }
                        return response.status.code == 201
                    }
                }
                for _ in 0..<concurrency { add() }
                while let ok = try await group.next() {
                    if ok { sent += 1 }
                    add()
                }
                return sent
            }
        } catch {
            try? await client.shutdown()
            throw error
        }
        try await client.shutdown()
        return sent
    }
}
