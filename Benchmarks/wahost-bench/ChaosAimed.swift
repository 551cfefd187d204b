import App
import Foundation
import Logging
import Storage
import Tenancy
import TestSupport
import WahostBasics
import WhatsApp

/// `chaos --aimed-kills N`: `kill -9` of `serve` inside the windows where it writes what a crash could tear, each
/// window measured at run time (the same work once without a kill, timed from outside), then the same work again with
/// the kill at a seeded moment inside it. In turn: Signal store writes (texts from new peers, each a `pkmsg` whose
/// session is stored and one-time prekey removed), a prekey upload (the server says it runs low, while new peers take
/// the last ones), and webhook outbox commits (events appended, delivered to a slow receiver, cursors stored).
extension Chaos {
    enum AimedWindow: String, CaseIterable {
        case signalStore = "signal_store"
        case preKeyUpload = "prekey_upload"
        case webhookOutbox = "webhook_outbox"
    }

    /// What the aimed kills came to.
    struct AimedKillReport {
        var kills: [AimedWindow: Int] = [:]
        /// The measured windows, in seconds, per kind.
        var windows: [AimedWindow: [Double]] = [:]
        var newPeerTexts = 0
        var broken: [String] = []

        var figures: [String: Any] {
            var figures: [String: Any] = ["aimed_kills": kills.values.reduce(0, +), "aimed_new_peer_texts": newPeerTexts]
            for window in AimedWindow.allCases {
                figures["aimed_kills_" + window.rawValue] = kills[window, default: 0]
                let measured = windows[window, default: []].sorted()
                if !measured.isEmpty {
                    figures["aimed_window_ms_" + window.rawValue] = [measured.first!, measured[measured.count / 2], measured.last!].map { Int($0 * 1000) }
                }
            }
            return figures
        }
    }

    /// Texts from new peers per burst (each starts a Signal session with a `pkmsg`).
    static let aimedBurst = 6
    /// One-time prekeys the simulator leaves when it tells the account it runs low.
    static let preKeysLeft = 2

    /// Runs `aimedKills` kills over the three windows in turn; each starts with every session connected.
    func runAimedKills(
        _ rig: BenchRig, server: inout (process: ChildProcess, port: Int), environment: [String: String], dataDirectory: String?, sent: SentTexts,
        receiver: WebhookCounter, generator: inout SeededGenerator
    ) async throws -> AimedKillReport {
        var report = AimedKillReport()
        let names = rig.tokens.map(\.0).sorted()
        var peerNumber = 0
        /// A peer number never used before: its first text is a `pkmsg` taking one of the account's one-time prekeys.
        func newPeers(_ count: Int) -> [String] {
            defer { peerNumber += count }
            report.newPeerTexts += count
            return (peerNumber..<peerNumber + count).map { "1555777" + String(format: "%05d", $0) }
        }
        for cycle in 0..<aimedKills {
            let window = AimedWindow.allCases[cycle % AimedWindow.allCases.count]
            let tenant = names[Int.random(in: 0..<names.count, using: &generator)]
            guard let account = rig.accounts[tenant] else { throw BenchError("no account for \(tenant)") }
            if try await rig.waitConnected(timeout: .seconds(60)) != names.count {
                report.broken.append("aimed kill \(cycle): sessions not connected before it")
                continue
            }
            let retriesBefore = try await retryReceipts(rig)
            // The window, measured: the same work with no kill, from its start until the simulator or receiver saw its end.
            let burst = window == .signalStore ? Self.aimedBurst : window == .preKeyUpload ? Self.preKeysLeft : 0
            let measured = try await aimedWork(window, rig, tenant: tenant, account: account, peers: newPeers(burst), sent: sent, receiver: receiver).finished()
            guard let length = measured else {
                report.broken.append("aimed kill \(cycle) (\(window.rawValue)): the measuring run did not finish within 30 s")
                continue
            }
            report.windows[window, default: []].append(length)
            let work = try await aimedWork(window, rig, tenant: tenant, account: account, peers: newPeers(burst), sent: sent, receiver: receiver)
            let delay = Double.random(in: 0...length, using: &generator)
            try await Task.sleep(until: work.start + .milliseconds(Int64(delay * 1000)), clock: .continuous)
            kill(server.process.pid, SIGKILL)
            await server.process.process.exited()
            report.kills[window, default: 0] += 1
            FileHandle.standardError.write(Data(String(format: "chaos: aimed kill %d (%@) at %.3f of %.3f s\n", cycle, window.rawValue, delay, length).utf8))
            report.broken += try await unopenedCredentialRecords(rig, dataDirectory: dataDirectory).map { "after aimed kill \(cycle): \($0)" }
            receiver.delay = .zero
            server = try await rig.startServer(extraEnvironment: environment, dataDirectory: dataDirectory)
            if await work.finished() == nil {
                report.broken.append("aimed kill \(cycle) (\(window.rawValue)): its work was not done 30 s after the restart")
            }
            if window == .preKeyUpload, let failure = try await checkPreKeysAgree(rig, tenant: tenant, account: account, peers: newPeers(Self.aimedBurst), sent: sent) {
                report.broken.append("aimed kill \(cycle): \(failure)")
            }
            let retries = try await retryReceipts(rig) - retriesBefore
            if retries > 0 { report.broken.append("aimed kill \(cycle) (\(window.rawValue)): \(retries) messages did not decrypt (retry receipts)") }
        }
        return report
    }

    /// Work aimed at a window, under way: when it started, and a wait for its end.
    struct AimedWork {
        let start: ContinuousClock.Instant
        let done: @Sendable () async throws -> Bool

        /// Seconds from the start to the end, or nil if it had not ended 30 s later (polls every 10 ms).
        func finished() async -> Double? {
            let deadline = start + .seconds(30)
            while ContinuousClock.now < deadline {
                if (try? await done()) == true { return seconds(ContinuousClock.now - start) }
                try? await Task.sleep(for: .milliseconds(10))
            }
            return nil
        }
    }

    /// Starts the work of `window` for one tenant; the texts it sends are added to `sent` (the run's checks cover them).
    private func aimedWork(
        _ window: AimedWindow, _ rig: BenchRig, tenant: String, account: String, peers: [String], sent: SentTexts, receiver: WebhookCounter
    ) async throws -> AimedWork {
        let control = rig.control
        let start = ContinuousClock.now
        switch window {
        case .signalStore:
            // Ends when the device acked every text: each stored, its session saved, its prekey removed.
            let ids = try await sendTexts(rig, to: tenant, account: account, from: peers, sent: sent)
            return AimedWork(start: start) { try await Self.acked(ids, account: account, control: control) }
        case .preKeyUpload:
            // The server says the prekeys run low; new peers take the last ones while the refill is generated and stored.
            let (status, body) = try await request("POST", control + "/accounts/\(account)/consume-prekeys", body: ["leaving": Self.preKeysLeft])
            guard status == 200 else { throw BenchError("consume-prekeys: \(status) \(body)") }
            let ids = try await sendTexts(rig, to: tenant, account: account, from: peers, sent: sent)
            return AimedWork(start: start) {
                guard try await Self.acked(ids, account: account, control: control) else { return false }
                return try await Self.preKeysHeld(by: account, control: control) >= PreKeyPolicy.minimumOnServer
            }
        case .webhookOutbox:
            // Each delivery answered after 20-60 ms: the kill lands among event appends, deliveries and cursor writes.
            receiver.delay = .milliseconds(Int64.random(in: 20...60))
            let peer = "1555666" + String(format: "%05d", tenant.unicodeScalars.reduce(UInt32(0)) { ($0 &* 31 &+ $1.value) % 100_000 })
            let ids = try await sendTexts(rig, to: tenant, account: account, from: Array(repeating: peer, count: Self.aimedBurst), sent: sent)
            return AimedWork(start: start) { receiver.missing(ids) == 0 }
        }
    }

    /// After a kill around a prekey upload, WhatsApp's prekeys and the server's agree: once the server holds enough
    /// again (the refill reached it, or the login's count check made a new one), texts from new peers, which take
    /// one-time prekeys of that upload, are all stored. Nil when they are; else what went wrong.
    private func checkPreKeysAgree(_ rig: BenchRig, tenant: String, account: String, peers: [String], sent: SentTexts) async throws -> String? {
        let control = rig.control
        let refilled = await AimedWork(start: .now) { try await Self.preKeysHeld(by: account, control: control) >= PreKeyPolicy.minimumOnServer }.finished()
        guard refilled != nil else { return "\(tenant)'s prekeys were not refilled within 30 s of the restart" }
        let ids = try await sendTexts(rig, to: tenant, account: account, from: peers, sent: sent)
        guard await AimedWork(start: .now, done: { try await Self.acked(ids, account: account, control: control) }).finished() != nil else {
            return "\(tenant) did not ack texts from new peers after a kill around its prekey upload"
        }
        return nil
    }

    /// One text from each of `peers` to the tenant's account, sent at once; their ids, added to `sent`.
    private func sendTexts(_ rig: BenchRig, to tenant: String, account: String, from peers: [String], sent: SentTexts) async throws -> [String] {
        let control = rig.control
        return try await withThrowingTaskGroup(of: String.self) { group in
            for (index, peer) in peers.enumerated() {
                group.addTask {
                    let (status, body) = try await request("POST", control + "/peers/\(peer)/messages", body: ["to": account, "text": "aimed \(index)"])
                    guard status == 200, let id = body["id"] as? String else { throw BenchError("text from \(peer): \(status) \(body)") }
                    return id
                }
            }
            var ids: [String] = []
            for try await id in group {
                sent.add(tenant: tenant, id: id)
                ids.append(id)
            }
            return ids
        }
    }

    /// True once none of `ids` waits for the account's ack at the simulator.
    private static func acked(_ ids: [String], account: String, control: String) async throws -> Bool {
        let (_, body) = try await request("GET", control + "/accounts/\(account)/queued")
        return Set(body["ids"] as? [String] ?? []).isDisjoint(with: ids)
    }

    /// The one-time prekeys the simulator holds for the account (what its count query answers).
    private static func preKeysHeld(by account: String, control: String) async throws -> Int {
        let (_, state) = try await request("GET", control + "/state")
        return (state["preKeys"] as? [String: Int] ?? [:])[account] ?? 0
    }

    /// Retry receipts the accounts sent so far: each is a message that did not decrypt.
    private func retryReceipts(_ rig: BenchRig) async throws -> Int {
        (try await rig.simulatorState()["receipts"] as? [String: Int] ?? [:])["retry"] ?? 0
    }

    /// Every credential record that does not open (device credentials, prekeys, Signal sessions and identities), read
    /// with `serve` down, as the next start would; tenants in `ended` may have none (a removed device's are wiped).
    func unopenedCredentialRecords(_ rig: BenchRig, dataDirectory: String?, ended: Set<String> = []) async throws -> [String] {
        var logger = Logger(label: "wahost.bench")
        logger.logLevel = .error
        let configuration = WahostConfiguration(dataDirectory: dataDirectory ?? rig.directory, databaseURL: rig.databaseURL, masterKeyBase64: rig.masterKey)
        let services = try await WahostServices.open(configuration, logger: logger)
        var failures: [String] = []
        for (name, _) in rig.tokens {
            let tenant = try TenantName(name)
            do {
                let store = services.credentialStore(for: tenant)
                guard try await store.load() != nil else {
                    if ended.contains(name) { continue }
                    throw BenchError("no device credentials")
                }
                _ = try await store.loadPreKeys()
                var keys: [SignalRecordKey] = []
                let kinds: [(String, (SignalAddress) -> SignalRecordKey)] = [("session", { .session($0) }), ("identity", { .identity($0) })]
                for (kind, make) in kinds {
                    for row in try await services.store.sealedRecordKeys(of: tenant, kind: kind) {
                        guard let dot = row.lastIndex(of: "."), let device = UInt32(row[row.index(after: dot)...]) else { throw BenchError("\(kind) key \(row)") }
                        keys.append(make(SignalAddress(name: String(row[..<dot]), deviceID: device)))
                    }
                }
                let loaded = try await services.signalStore(for: tenant).load(keys)
                if loaded.count != keys.count { throw BenchError("\(keys.count - loaded.count) Signal records listed but not loaded") }
            } catch {
                failures.append("\(name)'s credential records do not open: \(error)")
            }
        }
        await services.close()
        return failures
    }
}
