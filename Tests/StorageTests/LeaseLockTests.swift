import Foundation
import Logging
import PostgresNIO
@testable import Storage
import Tenancy
import TestSupport
import Testing

/// How a fenced write's lock on its lease row meets the holder's renewal and another node's takeover on PostgreSQL.
@Suite struct LeaseLockTests {
    @Test func aFencedWriteInFlightHoldsBackATakeoverButNotTheHoldersRenewal() async throws {
        guard ExternalTools.postgresEnabled else { return }
        let url = try PostgresURL(try await Backend.postgres.makeDatabaseURL(directory: ""))
        let holder = try await PostgresSystemStore(url: url, logger: Logger(label: "test.holder"))
        let taker = try await PostgresSystemStore(url: url, logger: Logger(label: "test.taker"))
        let acme = try StorageContractTests.tenant("acme")
        try await holder.createTenant(acme, adminTokenHash: "h", otpSecret: nil)
        let t0 = Date()
        let lease = try #require(try await holder.acquireLease(for: acme.name, nodeID: "node-a", ttl: .seconds(6), now: t0))

        // node-a's fenced write (a long prekey upload) has checked its fence and is still busy: it waits on an
        // advisory lock the test holds (busy, not idle: PostgreSQL ends a transaction idle for 3 s).
        let write = SealedRecordWrite(
            tenant: acme.name, changes: [SealedRecordChange(kind: "prekey", key: "1", sealed: [1, 2, 3])],
            fence: .holder(nodeID: "node-a", generation: lease.generation))
        let (gate, gateSink) = AsyncStream.makeStream(of: Void.self)
        let (release, releaseSink) = AsyncStream.makeStream(of: Void.self)
        let gatekeeper = Task {
            try await taker.client.withConnection { connection in
                _ = try await connection.query("SELECT pg_advisory_lock(4242)", logger: taker.logger).collect()
                gateSink.yield()
                for await _ in release { break }
                _ = try await connection.query("SELECT pg_advisory_unlock(4242)", logger: taker.logger).collect()
            }
        }
        defer { releaseSink.finish() }
        var gateClosed = gate.makeAsyncIterator()
        _ = await gateClosed.next()
        let (fenced, fencedSink) = AsyncStream.makeStream(of: Set<Int>.self)
        let writer = Task {
            try await holder.client.withTransaction(logger: holder.logger) { connection in
                fencedSink.yield(try await PostgresSystemStore.fencedOut([write], on: connection, logger: holder.logger))
                _ = try await connection.query("SELECT pg_advisory_xact_lock_shared(4242)", logger: holder.logger).collect()
            }
        }
        var fencedResults = fenced.makeAsyncIterator()
        #expect(await fencedResults.next() == [], "the fence holds for the write")

        // The heartbeat renews the lease meanwhile (within the store's 5 s call deadline, or it throws).
        let beat = LeaseBeat(tenant: acme.name, generation: lease.generation, state: "connected", lastError: nil)
        let lost = try await holder.renewLeases([beat], nodeID: "node-a", ttl: .seconds(6), now: t0.addingTimeInterval(2))
        #expect(lost.isEmpty, "the renewal does not wait for the node's own write")

        // Past the lease, node-b's takeover waits on the row until the write commits.
        let takeover = Task { try await taker.acquireLease(for: acme.name, nodeID: "node-b", ttl: .seconds(6), now: t0.addingTimeInterval(60)) }
        var waiting = 0
        for _ in 0..<100 where waiting == 0 {
            let rows = try await holder.client.query(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%session_leases%FOR UPDATE%'",
                logger: holder.logger)
            waiting = try await rows.collect().first?.decode(Int.self) ?? 0
            if waiting == 0 { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(waiting == 1, "the takeover waits on the lease row's lock")
        let ownerMeanwhile = try await holder.lease(of: acme.name)
        #expect(ownerMeanwhile?.nodeID == "node-a" && ownerMeanwhile?.generation == lease.generation, "not taken over while the write is in flight")
        releaseSink.yield()
        try await gatekeeper.value
        try await writer.value
        let taken = try await takeover.value
        #expect(taken?.nodeID == "node-b" && taken?.generation == lease.generation + 1, "taken over once the write committed")

        // A write under the old generation now finds the new one.
        let late = try await holder.client.withTransaction(logger: holder.logger) { connection in
            try await PostgresSystemStore.fencedOut([write], on: connection, logger: holder.logger)
        }
        #expect(late == [0], "the old holder's next write is fenced out")
        try await holder.close()
        try await taker.close()
    }
}
