import Foundation
import Logging
import Synchronization
import Tenancy

/// Appends events to the durable per-tenant log in batches, in the order they were recorded, with one task for the
/// whole process; readers of a tenant's log are woken after each batch that touched it.
public final class EventLogWriter: Sendable {
    private struct State {
        var pending: [NewTenantEvent] = []
        var inFlight = 0
        var readers: [TenantName: [UInt64: AsyncStream<Void>.Continuation]] = [:]
        var nextReader: UInt64 = 0
    }

    /// At most this many events wait for the database; beyond it the oldest session events are dropped first.
    public static let pendingLimit = 100_000

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
                    await Self.append(batch, repository: repository, logger: logger)
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
                // The database has been away for long: drop the oldest session event (the next state supersedes it), else the oldest.
                state.pending.remove(at: state.pending.firstIndex(where: { $0.type == "session" }) ?? 0)
            }
            state.pending.append(event)
        }
        wake.yield()
    }

    /// Appends at once and returns when the events are durable (ids; nil for a duplicate): for events that must be
    /// stored before something is acknowledged, like a received message before its receipt.
    public func append(_ events: [NewTenantEvent]) async throws(RepositoryError) -> [Int64?] {
        let ids = try await repository.appendEvents(events)
        Self.wake(readersOf: Set(events.map(\.tenant)), shared)
        return ids
    }

    /// Waits at most `limit` until every event recorded before the call is stored (or given up on); false if some
    /// were still pending then (a shutdown with the database away).
    public func flushed(within limit: Duration) async -> Bool {
        let deadline = ContinuousClock.now + limit
        while !shared.state.withLock({ $0.pending.isEmpty && $0.inFlight == 0 }) {
            guard ContinuousClock.now < deadline else { return false }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return true
    }

    /// Up to `limit` stored events of `tenant` after id `after`, oldest first.
    public func page(of tenant: TenantName, after: Int64, limit: Int) async throws(RepositoryError) -> [StoredTenantEvent] {
        try await repository.events(of: tenant, after: after, limit: limit)
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

    private static func takeBatch(_ shared: Shared) -> [NewTenantEvent]? {
        shared.state.withLock { state -> [NewTenantEvent]? in
            guard !state.pending.isEmpty else { return nil }
            let batch = Array(state.pending.prefix(500))
            state.pending.removeFirst(batch.count)
            state.inFlight = batch.count
            return batch
        }
    }

    private static func finishBatch(_ batch: [NewTenantEvent], _ shared: Shared) {
        shared.state.withLock { $0.inFlight = 0 }
        wake(readersOf: Set(batch.map(\.tenant)), shared)
    }

    private static func wake(readersOf tenants: Set<TenantName>, _ shared: Shared) {
        let readers = shared.state.withLock { state in tenants.flatMap { state.readers[$0].map { Array($0.values) } ?? [] } }
        for reader in readers { reader.yield() }
    }

    /// One transaction for the batch, retried with backoff while the database is away (until the writer is
    /// cancelled); when a row is refused (a deleted tenant), each event alone, dropping only the refused ones.
    private static func append(_ batch: [NewTenantEvent], repository: any EventLogRepository, logger: Logger) async {
        var delay = Duration.milliseconds(100)
        while true {
            do {
                _ = try await repository.appendEvents(batch)
                return
            } catch where error.kind == .notFound {
                break
            } catch {
                if Task.isCancelled {
                    logger.error("events not stored at shutdown", metadata: ["count": "\(batch.count)", "error": "\(error)"])
                    return
                }
                logger.warning("event log write failed; retrying", metadata: ["error": "\(error)", "delay_ms": "\(delay.components.seconds * 1000)"])
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(10))
            }
        }
        for event in batch {
            do { _ = try await repository.appendEvents([event]) } catch where error.kind == .notFound {
                continue  // the tenant is gone, and its log with it
            } catch {
                logger.error("event not stored", metadata: ["tenant": "\(event.tenant)", "type": "\(event.type)", "error": "\(error)"])
            }
        }
    }
}
