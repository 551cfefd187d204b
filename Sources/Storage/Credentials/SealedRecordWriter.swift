import Synchronization
import Tenancy

/// Writes sealed records of many tenants in shared transactions (a group commit): each caller returns once its
/// changes are durable, and 1,000 sessions' Signal state after 1,000 messages costs a few commits, not 1,000.
public final class SealedRecordWriter: Sendable {
    private struct Entry {
        var write: SealedRecordWrite
        var waiter: CheckedContinuation<Result<Void, RepositoryError>, Never>
    }

    /// At most this many tenants' writes share one transaction.
    static let batchLimit = 256

    /// The writes waiting for the next transaction, shared with the drain task.
    private final class Pending: Sendable {
        let entries = Mutex<[Entry]>([])
    }

    private let pending = Pending()
    private let wake: AsyncStream<Void>.Continuation
    private let drain: Task<Void, Never>

    public init(repository: any SealedRecordRepository) {
        let (wakes, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        self.wake = wake
        let pending = self.pending
        drain = Task {
            for await _ in wakes {
                while true {
                    let batch = pending.entries.withLock { entries -> [Entry] in
                        let batch = Array(entries.prefix(Self.batchLimit))
                        entries.removeFirst(batch.count)
                        return batch
                    }
                    guard !batch.isEmpty else { break }
                    await Self.commit(batch, repository: repository)
                }
            }
        }
    }

    deinit {
        wake.finish()
        drain.cancel()
    }

    /// Applies one tenant's changes with the next shared transaction; returns once they are durable.
    public func write(_ write: SealedRecordWrite) async throws(RepositoryError) {
        guard !write.changes.isEmpty else { return }
        let result = await withCheckedContinuation { continuation in
            pending.entries.withLock { $0.append(Entry(write: write, waiter: continuation)) }
            wake.yield()
        }
        try result.get()
    }

    /// One transaction for the batch (a write whose lease fence fails is left out and fails alone); when the
    /// transaction fails, each write alone, so a deleted tenant fails only its own caller.
    private static func commit(_ batch: [Entry], repository: any SealedRecordRepository) async {
        do {
            let fenced = try await repository.applySealedRecords(batch.map(\.write))
            for (index, entry) in batch.enumerated() {
                entry.waiter.resume(returning: fenced.contains(index) ? .failure(.leaseLost(entry.write.tenant)) : .success(()))
            }
            return
        } catch where batch.count == 1 {
            batch[0].waiter.resume(returning: .failure(error))
            return
        } catch {}
        for entry in batch {
            do {
                try await repository.writeSealedRecords([entry.write])
                entry.waiter.resume(returning: .success(()))
            } catch {
                entry.waiter.resume(returning: .failure(error))
            }
        }
    }
}
