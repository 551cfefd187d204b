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

    /// A message from an account that a peer reads later (`deferPeerReading`).
    struct DeferredReading {
        var peer: String
        /// The account (user) that sent it, whose live connections get the receipt.
        var account: String
        var message: Node
        var receipt: Attributes
    }

    /// How a peer's reading of a message ended.
    enum ReadingOutcome: Hashable {
        case read, unreadable
        /// Read, but the account had no live connection for the receipt.
        case unanswered
    }

    /// The state of the current load run.
    struct LoadRun {
        var pending: [(user: String, id: String, node: Node, text: String, peer: String)] = []
        /// How many of `pending` are sent.
        var nextPending = 0
        var sentAt: [String: ContinuousClock.Instant] = [:]
        var latencies: [Duration] = []
        var firstSend: ContinuousClock.Instant?
        var lastAck: ContinuousClock.Instant?
        var queued = 0
        var sent = 0
    }

    /// The peer that loads account number `index`: `155599` and five digits.
    public static func loadPeer(_ index: Int) -> String { "155599" + String(format: "%05d", index % 100_000) }

    /// Encrypts `perAccount` texts for every logged-in account with uploaded keys, then sends them at `rate` per
    /// second; returns how many were queued. Encryption happens before the clock starts.
    public func startInboundLoad(perAccount: Int, rate: Int) throws -> Int {
        guard rate > 0 else { throw SimulatorError("the rate must be positive") }
        var run = LoadRun()
        loadGeneration += 1
        let generation = loadGeneration
        let users = accounts.values.map(\.jid.user).filter { uploadedKeys[$0] != nil }.sorted()
        for (index, user) in users.enumerated() {
            guard let device = account(ofUser: user)?.jid, var sender = peer(Self.loadPeer(index)) else { continue }
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
        Task {
            let start = ContinuousClock.now
            // Paced against the start, not tick by tick: a slow tick is caught up by the next, so the rate offered is `rate`.
            // A later run replaces this one: its own task paces it.
            while self.loadGeneration == generation, self.sendLoad(upTo: Int((start.duration(to: .now) / .seconds(1)) * Double(rate)) + 1) {
                try? await Task.sleep(for: .milliseconds(5))
            }
        }
        return run.queued
    }

    /// Sends load messages until `total` of the run are sent; false once all are sent.
    private func sendLoad(upTo total: Int) -> Bool {
        guard load != nil else { return false }
        let now = ContinuousClock.now
        if load?.firstSend == nil { load?.firstSend = now }
        // `load` is changed in place throughout: a copy of the run would copy its tables at every message.
        while let next = load?.nextPending, let queued = load?.pending.count, next < min(total, queued), let message = load?.pending[next] {
            load?.nextPending += 1
            load?.sent += 1
            offlineQueue[message.user, default: []].append(QueuedMessage(id: message.id, peer: message.peer, text: message.text, group: nil, node: message.node))
            load?.sentAt[message.id] = now
            inject(message.node, toAccount: message.user)
        }
        guard let next = load?.nextPending, let queued = load?.pending.count else { return false }
        return next < queued
    }

    /// With `deferring`, the peers stop reading what accounts send them: each message is acked at once and kept
    /// (a benchmark's clock then measures the sender, not the recipients' phones, which share its machine). Without
    /// it, they read everything kept, in order, and answer each on its account's live connections; returns how many
    /// they read, could not read, and read with no live connection to answer on.
    @discardableResult
    public func deferPeerReading(_ deferring: Bool) -> (read: Int, unreadable: Int, unanswered: Int) {
        guard !deferring else {
            if deferredReadings == nil { deferredReadings = [] }
            return (0, 0, 0)
        }
        let kept = deferredReadings ?? []
        deferredReadings = nil
        var outcomes: [ReadingOutcome: Int] = [:]
        for reading in kept {
            guard var recipient = peer(reading.peer) else {
                outcomes[.unreadable, default: 0] += 1
                continue
            }
            outcomes[read(reading, by: &recipient, answering: liveConnectionIDs(of: reading.account)), default: 0] += 1
            peers[reading.peer] = recipient
        }
        return (outcomes[.read] ?? 0, outcomes[.unreadable] ?? 0, outcomes[.unanswered] ?? 0)
    }

    /// Records the ack of a load message.
    func loadAcked(_ id: String) {
        guard let sentAt = load?.sentAt.removeValue(forKey: id) else { return }
        let now = ContinuousClock.now
        load?.latencies.append(now - sentAt)
        load?.lastAck = now
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
