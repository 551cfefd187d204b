import Foundation
import Logging
import SessionPool
import Storage
import Synchronization
import Tenancy
import TestSupport
import Testing
import WahostBasics

/// The event log writer over a real SQLite file: batches in order, durable appends, readers woken.
@Suite struct EventLogWriterTests {
    func store() async throws -> (SQLiteSystemStore, TenantName) {
        let store = try SQLiteSystemStore(path: try makeTemporaryDirectory() + "/system.db")
        let acme = try TenantName("acme")
        try await store.createTenant(Tenant(name: acme, createdAt: Date(), mfaEnabled: false), adminTokenHash: "x", otpSecret: nil)
        return (store, acme)
    }

    @Test func recordedEventsAreStoredInOrderAndReadersWake() async throws {
        let (store, acme) = try await store()
        let writer = EventLogWriter(repository: store, logger: Logger(label: "test"))
        var wakeups = writer.wakeups(of: acme).makeAsyncIterator()
        for index in 0..<1_200 { writer.record(NewTenantEvent(tenant: acme, type: "session", at: Date(), data: #"{"n":\#(index)}"#)) }
        // An event for a tenant that does not exist is dropped without sinking the batch it travels in.
        writer.record(NewTenantEvent(tenant: try TenantName("ghost"), type: "session", at: Date(), data: "{}"))
        writer.record(NewTenantEvent(tenant: acme, type: "session", at: Date(), data: #"{"n":"last"}"#))
        #expect(await writer.flushed(within: .seconds(60)))
        let stored = try await writer.page(of: acme, after: 0, limit: 1_000) + (try await writer.page(of: acme, after: 1_000, limit: 1_000))
        #expect(stored.map(\.id) == Array(1...1_201))
        #expect(stored.first?.data == #"{"n":0}"# && stored.last?.data == #"{"n":"last"}"#)
        _ = await wakeups.next()
        try await store.close()
    }

    @Test func aDurableAppendReturnsItsIdsAndSkipsDuplicates() async throws {
        let (store, acme) = try await store()
        let writer = EventLogWriter(repository: store, logger: Logger(label: "test"))
        var wakeups = writer.wakeups(of: acme).makeAsyncIterator()
        let message = NewTenantEvent(tenant: acme, type: "message", at: Date(), data: #"{"id":"M1"}"#, dedupeKey: "message:M1")
        #expect(try await writer.append([message]) == [1])
        _ = await wakeups.next()
        #expect(try await writer.append([message]) == [nil], "a redelivered message is stored once")
        #expect(try await store.events(of: acme, after: 0, limit: 10).map(\.id) == [1], "durable when append returns")
        await #expect(throws: RepositoryError.self) {
            try await writer.append([NewTenantEvent(tenant: try TenantName("ghost"), type: "message", at: Date(), data: "{}")])
        }
        try await store.close()
    }

    @Test func concurrentDurableAppendsShareBatchesAndEachGetsItsOwnIds() async throws {
        let (store, acme) = try await store()
        let writer = EventLogWriter(repository: store, logger: Logger(label: "test"))
        let ids = try await withThrowingTaskGroup(of: (Int, [Int64?]).self) { group in
            for index in 0..<300 {
                let key = "message:M\(index % 250)"  // 50 of them are redeliveries of an earlier id
                group.addTask {
                    (index, try await writer.append([NewTenantEvent(tenant: acme, type: "message", at: Date(), data: "{}", dedupeKey: key)]))
                }
            }
            var all: [Int: [Int64?]] = [:]
            for try await (index, ids) in group { all[index] = ids }
            return all
        }
        let stored = ids.values.compactMap { $0.first ?? nil }
        #expect(ids.count == 300 && ids.values.allSatisfy { $0.count == 1 })
        #expect(stored.count == 250 && Set(stored) == Set(1...250), "each id once; a redelivery gets nil")
        #expect(try await store.events(of: acme, after: 0, limit: 1_000).count == 250)
        try await store.close()
    }

    @Test func aDurableAppendFailsAtOnceWhileTheDatabaseIsAway() async throws {
        let (store, acme) = try await store()
        let writer = EventLogWriter(repository: store, logger: Logger(label: "test"))
        try await store.close()
        await #expect(throws: RepositoryError.self) {
            try await writer.append([NewTenantEvent(tenant: acme, type: "message", at: Date(), data: "{}", dedupeKey: "message:M1")])
        }
    }

    @Test func aDurableAppendIsAnsweredWhileRecordedEventsWaitOutALock() async throws {
        let path = try makeTemporaryDirectory() + "/system.db"
        let store = try SQLiteSystemStore(path: path, busyTimeout: 0.2)
        let acme = try TenantName("acme")
        try await store.createTenant(Tenant(name: acme, createdAt: Date(), mfaEnabled: false), adminTokenHash: "x", otpSecret: nil)
        let writer = EventLogWriter(repository: store, logger: Logger(label: "test"))
        let lock = try SQLiteLockHolder(path: path)
        writer.record(NewTenantEvent(tenant: acme, type: "session", at: Date(), data: #"{"state":"connected"}"#, dedupeKey: nil))
        // The recorded event fails and is retried with backoff; a durable append queued behind it must not wait for that.
        try await Task.sleep(for: .seconds(1))
        let released = Mutex(false)
        let safety = Task {
            try await Task.sleep(for: .seconds(30))
            released.withLock { $0 = true }
            lock.release()
        }
        await #expect(throws: RepositoryError.self) {
            try await writer.append([NewTenantEvent(tenant: acme, type: "message", at: Date(), data: "{}", dedupeKey: "message:M1")])
        }
        #expect(!released.withLock { $0 }, "the durable append was answered while the lock was held")
        safety.cancel()
        if !released.withLock({ $0 }) { lock.release() }
        // The store lets one write a second probe the database while it is known to be away.
        var stored: [Int64?] = []
        for _ in 0..<50 where stored.isEmpty {
            stored = (try? await writer.append([NewTenantEvent(tenant: acme, type: "message", at: Date(), data: "{}", dedupeKey: "message:M1")])) ?? []
            if stored.isEmpty { try await Task.sleep(for: .milliseconds(200)) }
        }
        #expect(stored.count == 1 && stored[0] != nil, "stored once the lock is gone")
        #expect(await writer.flushed(within: .seconds(30)))
        #expect(try await store.events(of: acme, after: 0, limit: 10).map(\.type) == ["session", "message"], "the recorded event kept its place")
    }

    @Test func aFailedWriteFailsTheRestOfItsChainUnwrittenAndNoOtherChain() async throws {
        let (store, acme) = try await store()
        let writer = EventLogWriter(repository: store, logger: Logger(label: "test"))
        let start = Date()
        let lease = try #require(try await store.acquireLease(for: acme, nodeID: "node-a", ttl: .seconds(1), now: start))
        _ = try #require(try await store.acquireLease(for: acme, nodeID: "node-b", ttl: .seconds(30), now: start.addingTimeInterval(5)))
        func write(_ id: String, fence: LeaseFence?) -> (SealedRecordWrite, [NewTenantEvent]) {
            let records = SealedRecordWrite(tenant: acme, changes: [SealedRecordChange(kind: "session", key: id, sealed: [1])], fence: fence)
            return (records, [NewTenantEvent(tenant: acme, type: "message", at: Date(), data: #"{"id":"\#(id)"}"#, dedupeKey: "message:\(id)")])
        }
        // A connection's saves queued back to back: the first is refused (its lease is gone), so the ones built on it must
        // not land even though nothing refuses them, or a redelivery of the first would find its ratchet step taken.
        let chain = WriteChain()
        let outcomes = Mutex<[String: Bool]>([:])
        let settled = AsyncStream<Void>.makeStream()
        for (id, fence) in [("M1", LeaseFence.holder(nodeID: "node-a", generation: lease.generation)), ("M2", nil), ("M3", nil)] {
            let (records, events) = write(id, fence: fence)
            writer.submit(records, with: events, chain: chain) { result in
                outcomes.withLock { $0[id] = (try? result.get()) != nil }
                settled.continuation.yield()
            }
        }
        var waits = settled.stream.makeAsyncIterator()
        for _ in 0..<3 { _ = await waits.next() }
        #expect(outcomes.withLock { $0 } == ["M1": false, "M2": false, "M3": false])
        #expect(chain.isBroken)
        // Queued after the failure: refused at once. Another chain (the next connection) is not affected.
        let (late, lateEvents) = write("M4", fence: nil)
        await #expect(throws: RepositoryError.self) { try await writer.write(late, with: lateEvents, chain: chain) }
        let (fresh, freshEvents) = write("M5", fence: nil)
        try await writer.write(fresh, with: freshEvents, chain: WriteChain())
        #expect(try await store.events(of: acme, after: 0, limit: 10).map(\.data) == [#"{"id":"M5"}"#])
        #expect(try await store.sealedRecordKeys(of: acme, kind: "session") == ["M5"])
        try await store.close()
    }
}
