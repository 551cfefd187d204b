import Foundation
import Logging
import Synchronization
import WahostBasics
import Tenancy

/// Appends events to the durable per-tenant log, and writes the tenants' sealed Signal records, in batches, in the
/// order they were submitted, with one task for the whole process (a group commit: many sessions' messages and their
/// Signal state share one transaction, and a received message is stored with the state that decrypted it); readers
/// of a tenant's log are woken after each batch that touched it.
public final class EventLogWriter: DurableWriter {
    /// What one call queued; a durable write is told its outcome through `done` (the events' ids).
    private struct Entry {
        var events: [NewTenantEvent]
        var records: SealedRecordWrite? = nil
        var chain: WriteChain? = nil
        var done: (@Sendable (Result<[Int64?], RepositoryError>) -> Void)? = nil

        /// Rows this entry adds to a transaction.
        var size: Int { events.count + (records?.changes.count ?? 0) }

        /// Tells the caller; a failure first fails the rest of its chain.
        func settle(_ result: Result<[Int64?], RepositoryError>) {
            if case .failure = result { chain?.breakOff() }
            done?(result)
        }
    }

    private struct State {
        var pending: [Entry] = []
        var inFlight = 0
        var readers: [TenantName: [UInt64: AsyncStream<Void>.Continuation]] = [:]
        var nextReader: UInt64 = 0
    }

    /// At most this many calls wait for the database; beyond it the oldest recorded session events are dropped first.
    public static let pendingLimit = 100_000
    /// At most this many rows (events and records) go in one transaction.
    static let batchLimit = 500

    private let repository: any EventLogRepository
    private let logger: Logger
    /// The state the drain task shares with callers.
    private final class Shared: Sendable {
        let state = Mutex(State())
    }

    private let shared = Shared()
    private let wake: AsyncStream<Void>.Continuation
    private let drain: Task<Void, Never>

    public init(repository: any EventLogRepository, logger: Logger) {
        self.repository = repository
        self.logger = logger
        let (wakes, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        self.wake = wake
        let shared = self.shared
        drain = Task {
            for await _ in wakes {
                while let batch = Self.takeBatch(shared) {
                    await Self.append(batch, repository: repository, logger: logger, shared: shared)
                    Self.finishBatch(batch, shared)
                }
            }
        }
    }

    deinit {
        wake.finish()
        drain.cancel()
    }

    /// Queues an event; it is stored with the next batch.
    public func record(_ event: NewTenantEvent) {
        shared.state.withLock { state in
            if state.pending.count >= Self.pendingLimit {
                // The database has been away for long: drop the oldest session event (the next state supersedes it).
                let oldest = state.pending.firstIndex { $0.done == nil && $0.events.first?.type == "session" }
                    ?? state.pending.firstIndex { $0.done == nil }
                guard let oldest else { return }
                state.pending.remove(at: oldest)
            }
            state.pending.append(Entry(events: [event]))
        }
        wake.yield()
    }

    /// Stores the events with the next batch and returns once they are durable (ids; nil for a duplicate): for events
    /// that must be stored before something is acknowledged, like a received message before its receipt. Throws
    /// when that batch could not be written (the caller does not acknowledge; the events are not retried).
    public func append(_ events: [NewTenantEvent]) async throws(RepositoryError) -> [Int64?] {
        guard !events.isEmpty else { return [] }
        return try await enqueue(Entry(events: events))
    }

    /// Queues the records and the events for one transaction, after everything submitted before; `settled` is called
    /// once they are durable, or failed: `.fenced` (nothing stored) when the records' fence does not hold, and at once,
    /// unwritten, once an earlier write of `chain` failed.
    public func submit(
        _ records: SealedRecordWrite, with events: [NewTenantEvent], chain: WriteChain?,
        settled: @escaping @Sendable (Result<Void, RepositoryError>) -> Void
    ) {
        guard !events.isEmpty || !records.changes.isEmpty else { return settled(.success(())) }
        submit(Entry(events: events, records: records, chain: chain, done: { settled($0.map { _ in () }) }))
    }

    private func enqueue(_ entry: Entry) async throws(RepositoryError) -> [Int64?] {
        let result = await withCheckedContinuation { continuation in
            var entry = entry
            entry.done = { continuation.resume(returning: $0) }
            submit(entry)
        }
        return try result.get()
    }

    private func submit(_ entry: Entry) {
        if entry.chain?.isBroken == true { return entry.settle(.failure(Self.chainBroken)) }
        shared.state.withLock { $0.pending.append(entry) }
        wake.yield()
    }

    /// The failure of a write queued behind a failed one of its chain.
    static let chainBroken = RepositoryError(.unavailable, "an earlier write this one builds on failed; not written")

    /// Waits at most `limit` until every event recorded before the call is stored (or given up on); false if some
    /// were still pending then (a shutdown with the database away).
    public func flushed(within limit: Duration) async -> Bool {
        let shared = self.shared
        // Shutdown calls this from a cancelled task, where `Task.sleep` returns at once: the wait runs detached so it
        // sleeps instead of spinning.
        return await Task.detached {
            let deadline = ContinuousClock.now + limit
            while !shared.state.withLock({ $0.pending.isEmpty && $0.inFlight == 0 }) {
                guard ContinuousClock.now < deadline else { return false }
                try? await Task.sleep(for: .milliseconds(20))
            }
            return true
        }.value
    }

    /// Up to `limit` stored events of `tenant` after id `after`, oldest first.
    public func page(of tenant: TenantName, after: Int64, limit: Int) async throws(RepositoryError) -> [StoredTenantEvent] {
        try await repository.events(of: tenant, after: after, limit: limit)
    }

    /// The stored event of `tenant` with this dedupe key, if the log still holds it.
    public func event(of tenant: TenantName, dedupeKey: String) async throws(RepositoryError) -> StoredTenantEvent? {
        try await repository.event(of: tenant, dedupeKey: dedupeKey)
    }

    /// The newest `limit` events of `tenant` of the given types, oldest first.
    public func recent(of tenant: TenantName, types: [String], limit: Int) async throws(RepositoryError) -> [StoredTenantEvent] {
        try await repository.recentEvents(of: tenant, types: types, limit: limit)
    }

    /// A wake-up each time events of `tenant` were stored by this process (readers then read the log).
    public func wakeups(of tenant: TenantName) -> AsyncStream<Void> {
        let (stream, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let id = shared.state.withLock { state -> UInt64 in
            state.nextReader += 1
            state.readers[tenant, default: [:]][state.nextReader] = continuation
            return state.nextReader
        }
        continuation.onTermination = { [weak self] _ in
            self?.shared.state.withLock { state in
                state.readers[tenant]?[id] = nil
                if state.readers[tenant]?.isEmpty == true { state.readers[tenant] = nil }
            }
        }
        return stream
    }

    // MARK: The drain task

    private static func takeBatch(_ shared: Shared) -> [Entry]? {
        shared.state.withLock { state -> [Entry]? in
            guard !state.pending.isEmpty else { return nil }
            var count = 0
            var taken = 0
            for entry in state.pending {
                if taken > 0, count + entry.size > batchLimit { break }
                count += entry.size
                taken += 1
            }
            let batch = Array(state.pending.prefix(taken))
            state.pending.removeFirst(taken)
            state.inFlight = count
            return batch
        }
    }

    /// Every pending entry, if one of them waits for its ids (in order, so the log keeps the order of the calls).
    private static func takeIfDurableWaits(_ shared: Shared) -> [Entry]? {
        shared.state.withLock { state -> [Entry]? in
            guard state.pending.contains(where: { $0.done != nil }) else { return nil }
            defer { state.pending.removeAll() }
            state.inFlight += state.pending.reduce(0) { $0 + $1.size }
            return state.pending
        }
    }

    private static func finishBatch(_ batch: [Entry], _ shared: Shared) {
        shared.state.withLock { $0.inFlight = 0 }
        wake(readersOf: Set(batch.flatMap { $0.events.map(\.tenant) }), shared)
    }

    private static func wake(readersOf tenants: Set<TenantName>, _ shared: Shared) {
        let readers = shared.state.withLock { state in tenants.flatMap { state.readers[$0].map { Array($0.values) } ?? [] } }
        for reader in readers { reader.yield() }
    }

    /// One transaction for the batch. While the database is away, the durable writes in it fail at once (their
    /// callers do not acknowledge) and the recorded events are retried with backoff until the writer is cancelled.
    /// When a row is refused (a deleted tenant), each call alone, so only the refused ones fail or are dropped; a
    /// write whose fence does not hold fails alone (`.fenced`) and stores nothing.
    private static func append(_ batch: [Entry], repository: any EventLogRepository, logger: Logger, shared: Shared) async {
        var entries = batch
        var delay = Duration.milliseconds(100)
        while !entries.isEmpty {
            entries = failingBrokenChains(entries)
            guard !entries.isEmpty else { return }
            do {
                let outcomes = try await repository.commit(Self.writes(entries))
                for (entry, ids) in zip(entries, outcomes) { entry.settle(Self.result(ids, of: entry)) }
                return
            } catch where error.kind == .notFound {
                break
            } catch {
                for entry in entries { entry.settle(.failure(error)) }
                entries.removeAll { $0.done != nil }
                if Task.isCancelled {
                    logger.error("events not stored at shutdown", metadata: ["count": "\(entries.count)", "error": "\(error)"])
                    return
                }
                guard !entries.isEmpty else { return }
                logger.storageFailure("event log write failed; retrying", error, metadata: ["delay_ms": "\(delay.wholeMilliseconds)"])
                // A durable append queued meanwhile is tried at once, with what waits before it: its caller (a received
                // message's ack) must get an answer now, not after the outage.
                let resume = ContinuousClock.now + delay
                while ContinuousClock.now < resume, !Task.isCancelled {
                    if let queued = takeIfDurableWaits(shared) {
                        entries += queued
                        break
                    }
                    try? await Task.sleep(for: .milliseconds(50))
                }
                delay = min(delay * 2, .seconds(10))
            }
        }
        for entry in entries {
            guard entry.chain?.isBroken != true else {
                entry.settle(.failure(chainBroken))
                continue
            }
            do {
                let ids = try await repository.commit([DurableWrite(events: entry.events, records: entry.records)])[0]
                entry.settle(Self.result(ids, of: entry))
            } catch {
                entry.settle(.failure(error))
                // A deleted tenant's log is gone with it; anything else is worth a line.
                if error.kind != .notFound, entry.done == nil {
                    logger.error("event not stored", metadata: ["tenant": "\(entry.events[0].tenant)", "error": "\(error)"])
                }
            }
        }
    }

    /// The batch for the repository, each chain numbered.
    private static func writes(_ entries: [Entry]) -> [DurableWrite] {
        var chains: [ObjectIdentifier: Int] = [:]
        return entries.map { entry in
            var number: Int?
            if let chain = entry.chain {
                number = chains[ObjectIdentifier(chain)] ?? chains.count
                chains[ObjectIdentifier(chain)] = number
            }
            return DurableWrite(events: entry.events, records: entry.records, chain: number)
        }
    }

    /// The entries whose chain is intact; the others are failed unwritten.
    private static func failingBrokenChains(_ entries: [Entry]) -> [Entry] {
        entries.filter { entry in
            guard entry.chain?.isBroken == true else { return true }
            entry.settle(.failure(chainBroken))
            return false
        }
    }

    /// A call's answer: its events' ids, or `.fenced` when its records' fence did not hold.
    private static func result(_ ids: [Int64?]?, of entry: Entry) -> Result<[Int64?], RepositoryError> {
        guard let ids else { return .failure(.leaseLost(entry.records?.tenant ?? entry.events[0].tenant)) }
        return .success(ids)
    }
}
