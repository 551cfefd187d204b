import Foundation
import WABinary
import WhatsApp

/// Inbound message load for benchmarks: every connected account gets texts from its own peer at a paced rate, and
/// the time from each send to the account's ack (sent only once the message is stored) is recorded.
extension WhatsAppSimulator {
    /// A load run's progress and figures.
    public struct LoadReport: Sendable, Codable, Equatable {
        public var queued = 0
        public var sent = 0
        public var acked = 0
        /// Seconds from the first send to the last ack.
        public var seconds = 0.0
        public var latencyP50Milliseconds = 0.0
        public var latencyP99Milliseconds = 0.0
        public var latencyMaxMilliseconds = 0.0
    }

    /// The state of the current load run.
    struct LoadRun {
        var pending: [(user: String, id: String, node: Node, text: String, peer: String)] = []
        var sentAt: [String: ContinuousClock.Instant] = [:]
        var latencies: [Duration] = []
        var firstSend: ContinuousClock.Instant?
        var lastAck: ContinuousClock.Instant?
        var queued = 0
        var sent = 0
    }

    /// The peer that loads account number `index`: `155599` and five digits.
    static func loadPeer(_ index: Int) -> String { "155599" + String(format: "%05d", index % 100_000) }

    /// Encrypts `perAccount` texts for every logged-in account with uploaded keys, then sends them at `rate` per
    /// second; returns how many were queued. Encryption happens before the clock starts.
    public func startInboundLoad(perAccount: Int, rate: Int) throws -> Int {
        var run = LoadRun()
        let users = accounts.values.map(\.jid.user).filter { uploadedKeys[$0] != nil }.sorted()
        for (index, user) in users.enumerated() {
            guard let device = accounts.values.first(where: { $0.jid.user == user })?.jid, var sender = peer(Self.loadPeer(index)) else { continue }
            for number in 0..<max(0, perAccount) {
                var generator = SystemRandomNumberGenerator()
                let id = MessageStanzas.newMessageID(using: &generator)
                let text = "load \(number) for \(user)"
                let node = try messageNode(id: id, text: text, from: &sender, to: device, group: nil)
                run.pending.append((user, id, node, text, sender.jid.user))
            }
            peers[sender.jid.user] = sender
        }
        run.queued = run.pending.count
        load = run
        let interval = Duration.milliseconds(10)
        let perTick = max(1, rate / 100)
        Task {
            while self.sendLoadTick(perTick) { try? await Task.sleep(for: interval) }
        }
        return run.queued
    }

    /// Sends the next `count` load messages; false once all are sent.
    private func sendLoadTick(_ count: Int) -> Bool {
        guard var run = load else { return false }
        let now = ContinuousClock.now
        if run.firstSend == nil { run.firstSend = now }
        for message in run.pending.prefix(count) {
            offlineQueue[message.user, default: []].append(QueuedMessage(id: message.id, peer: message.peer, text: message.text, group: nil, node: message.node))
            run.sentAt[message.id] = now
            inject(message.node, toAccount: message.user)
        }
        let taken = min(count, run.pending.count)
        run.pending.removeFirst(taken)
        run.sent += taken
        load = run
        return !run.pending.isEmpty
    }

    /// Records the ack of a load message.
    func loadAcked(_ id: String) {
        guard var run = load, let sentAt = run.sentAt.removeValue(forKey: id) else { return }
        let now = ContinuousClock.now
        run.latencies.append(now - sentAt)
        run.lastAck = now
        load = run
    }

    /// The current run's figures.
    public var loadReport: LoadReport {
        guard let run = load else { return LoadReport() }
        let sorted = run.latencies.sorted()
        func milliseconds(_ fraction: Double) -> Double {
            guard !sorted.isEmpty else { return 0 }
            let duration = sorted[min(sorted.count - 1, Int((Double(sorted.count) * fraction).rounded(.up)) - 1)]
            return Double(duration.components.attoseconds) / 1e15 + Double(duration.components.seconds) * 1000
        }
        var report = LoadReport(queued: run.queued, sent: run.sent, acked: sorted.count)
        if let first = run.firstSend, let last = run.lastAck {
            let elapsed = last - first
            report.seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        }
        report.latencyP50Milliseconds = milliseconds(0.5)
        report.latencyP99Milliseconds = milliseconds(0.99)
        report.latencyMaxMilliseconds = milliseconds(1)
        return report
    }
}
