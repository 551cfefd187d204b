import Foundation
import Logging
import PostgresNIO
@testable import Storage
import Tenancy
import TestSupport
import Testing

/// A node frozen in the middle of a transaction (`SIGSTOP`, a paused VM) must not hold its locks against the others.
@Suite struct AbandonedTransactionTests {
    @Test func aTransactionLeftOpenIsEndedBeforeAnotherNodesCallOnItsRowsGivesUp() async throws {
        guard ExternalTools.postgresEnabled else { return }
        let url = try PostgresURL(try await Backend.postgres.makeDatabaseURL(directory: ""))
        let frozen = try await PostgresSystemStore(url: url, logger: Logger(label: "test.frozen"))
        let taker = try await PostgresSystemStore(url: url, logger: Logger(label: "test.taker"))
        let acme = try StorageContractTests.tenant("acme")
        try await frozen.createTenant(acme, adminTokenHash: "h", otpSecret: nil)
        let t0 = Date(timeIntervalSince1970: 1_800_000_000)
        _ = try #require(try await frozen.acquireLease(for: acme.name, nodeID: "node-a", ttl: .seconds(6), now: t0))

        // node-a locks its lease row as its heartbeat does, then makes no progress (its process is stopped).
        let (locked, lockedSink) = AsyncStream.makeStream(of: Void.self)
        let holder = Task {
            try await frozen.client.withTransaction(logger: frozen.logger) { connection in
                _ = try await connection.query("SELECT tenant FROM session_leases WHERE tenant = 'acme' FOR NO KEY UPDATE", logger: frozen.logger).collect()
                lockedSink.yield()
                try await Task.sleep(for: .seconds(8))
            }
        }
        var iterator = locked.makeAsyncIterator()
        _ = await iterator.next()

        // Its lease has expired: node-b's takeover waits for the lock, and must get it within its call deadline (5 s).
        let takeover = try await taker.acquireLease(for: acme.name, nodeID: "node-b", ttl: .seconds(6), now: t0.addingTimeInterval(60))
        #expect(takeover?.nodeID == "node-b", "the frozen node's transaction was ended and the lease taken over")
        // Not awaited: postgres-nio's transaction whose session PostgreSQL ended waits on its COMMIT without end (the
        // store bounds every call by its deadline, so a node's caller gets an error), and `frozen` keeps that connection.
        holder.cancel()
        try await taker.close()
    }
}
