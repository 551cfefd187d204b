import Foundation
import Storage
import Tenancy
import TestSupport
import Testing

/// Lockouts that an attacker cannot turn against the owner of a credential.
@Suite struct LockoutRulesTests {
    func makeDirectory(store: any SystemStore, clock: ManualClock) -> TenantDirectory {
        let configuration = TenantDirectory.Configuration(hashParameters: TenantDirectoryTests.cheapHashing, lockoutPolicy: .standard)
        return TenantDirectory(repositories: store, masterKey: .generate(), configuration: configuration, now: { clock.now })
    }

    @Test("20 junk operator tokens lock out their senders, not the operator", arguments: Backend.available)
    func junkOperatorTokensDoNotLockOutTheOperator(_ backend: Backend) async throws {
        let store = try await backend.makeStore()
        let directory = makeDirectory(store: store, clock: ManualClock())
        let token = try await directory.issueOperatorToken(actor: "test")
        let junk = ["x", "wahop_short", "wah_acme_" + String(repeating: "A", count: 43), "Bearer " + token.text, String(repeating: "z", count: 200)]
        for attempt in 0..<20 {
            await #expect(throws: AuthenticationError.self) {
                try await directory.authenticateOperator(token: junk[attempt % junk.count], clientAddress: "198.51.100.\(attempt)")
            }
        }
        try await directory.authenticateOperator(token: token.text, clientAddress: "203.0.113.7")
        // The junk still counts against the address that sent it.
        for _ in 0..<10 {
            await #expect(throws: AuthenticationError.self) { try await directory.authenticateOperator(token: "junk", clientAddress: "192.0.2.1") }
        }
        do {
            try await directory.authenticateOperator(token: token.text, clientAddress: "192.0.2.1")
            Issue.record("a locked-out address was let in")
        } catch {
            guard case .lockedOut = error.code else { throw error }
        }
        try await store.close()
    }

    @Test("a flood of bad tokens from one client writes one audit row per minute, counting the rest", arguments: Backend.available)
    func anonymousFailuresAreAggregated(_ backend: Backend) async throws {
        let store = try await backend.makeStore()
        let clock = ManualClock()
        let configuration = TenantDirectory.Configuration(
            hashParameters: TenantDirectoryTests.cheapHashing,
            lockoutPolicy: LockoutPolicy(maximumFailures: 1000, window: .seconds(600), lockoutDuration: .seconds(900)))
        let directory = TenantDirectory(repositories: store, masterKey: .generate(), configuration: configuration, now: { clock.now })
        for _ in 0..<20 {
            await #expect(throws: AuthenticationError.self) { try await directory.authenticateTenant(token: "junk", clientAddress: "192.0.2.1") }
        }
        #expect(try await store.auditEvents(tenant: nil, limit: 100).filter { $0.action == "auth.token_invalid" }.count == 1)
        clock.advance(61)
        await #expect(throws: AuthenticationError.self) { try await directory.authenticateTenant(token: "junk", clientAddress: "192.0.2.1") }
        let rows = try await store.auditEvents(tenant: nil, limit: 100).filter { $0.action == "auth.token_invalid" }
        #expect(rows.count == 2)
        #expect(rows.first?.detail?.contains("19 more") == true, "\(rows)")
        try await store.close()
    }
}

/// Concurrent guesses never outnumber the failures left, and argon2 work in flight stays bounded.
@Suite struct ConcurrentGuessTests {
    /// argon2 costly enough (8 MiB, 2 passes) that concurrent runs overlap.
    static let slowerHashing = Argon2id.Parameters(iterations: 2, memoryKiB: 8 * 1024, parallelism: 1)

    func makeDirectory(store: any SystemStore, maximumFailures: Int, concurrency: Int, queue: Int) -> TenantDirectory {
        let configuration = TenantDirectory.Configuration(
            hashParameters: Self.slowerHashing,
            lockoutPolicy: LockoutPolicy(maximumFailures: maximumFailures, window: .seconds(600), lockoutDuration: .seconds(900)),
            argon2Concurrency: concurrency, argon2QueueLimit: queue)
        return TenantDirectory(repositories: store, masterKey: .generate(), configuration: configuration)
    }

    /// Wrong tokens for `tenant` from `count` clients at once; what each was answered.
    func guessConcurrently(_ directory: TenantDirectory, tenant: String, count: Int) async -> [AuthenticationError.Code] {
        let guess: @Sendable (Int) -> String = { "wah_\(tenant)_" + String(repeating: "A", count: 42) + String($0 % 10) }
        return await authenticateConcurrently(directory, count: count, token: guess, clientAddress: { "198.51.100.\($0)" }).map { $0 ?? .tokenMissing }
    }

    /// `count` token checks at once, the `index`th with `token(index)` from `clientAddress(index)`; nil for each that passed.
    func authenticateConcurrently(
        _ directory: TenantDirectory, count: Int, token: @escaping @Sendable (Int) -> String, clientAddress: @escaping @Sendable (Int) -> String
    ) async -> [AuthenticationError.Code?] {
        await withTaskGroup(of: AuthenticationError.Code?.self) { group in
            for index in 0..<count {
                group.addTask {
                    do {
                        _ = try await directory.authenticateTenant(token: token(index), clientAddress: clientAddress(index))
                        return nil
                    } catch let error as AuthenticationError {
                        return error.code
                    } catch {
                        return .unavailable
                    }
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
    }

    @Test("20 concurrent wrong tokens: 10 are checked, the rest wait for them and are then locked out", arguments: Backend.available)
    func concurrentGuessesNeverOutnumberTheFailuresLeft(_ backend: Backend) async throws {
        let store = try await backend.makeStore()
        let directory = makeDirectory(store: store, maximumFailures: 10, concurrency: 2, queue: 100)
        let issued = try await directory.createTenant(try TenantName("acme"), mfa: false, actor: "test")
        let codes = await guessConcurrently(directory, tenant: "acme", count: 20)
        #expect(codes.filter { $0 == .tokenInvalid }.count == 10, "\(codes)")
        #expect(codes.filter { if case .lockedOut = $0 { true } else { false } }.count == 10, "\(codes)")
        #expect(directory.argon2Gate.load.peakRunning <= 2)
        await #expect(throws: AuthenticationError.self) {
            try await directory.authenticateTenant(token: issued.adminToken.text, clientAddress: "203.0.113.1")
        }
        try await store.close()
    }

    @Test("argon2 never runs more than the bound at once; beyond the queue callers are told busy, which is not a failure", arguments: Backend.available)
    func argon2WorkIsBoundedAndOverflowIsBusy(_ backend: Backend) async throws {
        let store = try await backend.makeStore()
        // A bound of 1: without the gate, a 2-core machine ran about 1.9 argon2 hashes at once for 20 guesses.
        let directory = makeDirectory(store: store, maximumFailures: 20, concurrency: 1, queue: 3)
        let issued = try await directory.createTenant(try TenantName("acme"), mfa: false, actor: "test")
        let codes = await guessConcurrently(directory, tenant: "acme", count: 20)
        #expect(codes.allSatisfy { $0 == .tokenInvalid || $0 == .busy }, "\(codes)")
        #expect(codes.contains(.busy), "\(codes)")
        let load = directory.argon2Gate.load
        #expect(load.peakRunning == 1)
        #expect(load.refused == codes.filter { $0 == .busy }.count)
        #expect(load.running == 0 && load.waiting == 0)
        // Only the checked guesses counted: a busy answer checked nothing, and load must not lock a client out.
        _ = try await directory.authenticateTenant(token: issued.adminToken.text, clientAddress: "203.0.113.1")
        try await store.close()
    }

    @Test("64 concurrent requests from one client with the right token, first checked by argon2 and then cached, all pass", arguments: Backend.available)
    func concurrentRequestsWithAGoodTokenAreNotFailures(_ backend: Backend) async throws {
        let store = try await backend.makeStore()
        let directory = makeDirectory(store: store, maximumFailures: 10, concurrency: 2, queue: 100)
        let issued = try await directory.createTenant(try TenantName("acme"), mfa: false, actor: "test")
        let token = issued.adminToken.text
        for round in ["cold", "cached"] {
            let answers = await authenticateConcurrently(directory, count: 64, token: { _ in token }, clientAddress: { _ in "203.0.113.7" })
            let passed = answers.filter { $0 == nil }.count
            // Counting each request as a failure until it passed locked the client out after 10 (a backend's burst).
            #expect(passed == 64, "\(round): \(passed) of 64 passed")
        }
        #expect(directory.argon2Gate.load.peakRunning <= 2)
        try await store.close()
    }

    @Test("a guess waits while as many checks are under way as failures are left, and is refused once they lock the tenant")
    func guessesNeverOutnumberTheFailuresLeft() async throws {
        let tracker = LockoutTracker(policy: LockoutPolicy(maximumFailures: 3, window: .seconds(600), lockoutDuration: .seconds(900)))
        let now = Date(timeIntervalSince1970: 1_000_000)
        let keys = ["tenant:acme"]
        for _ in 0..<3 { #expect(await tracker.beginAttempt(keys, now: { now }) == .admitted) }
        let fourth = Task { await tracker.beginAttempt(keys, now: { now }) }
        while await tracker.waitingAttempts < 1 { try await Task.sleep(for: .milliseconds(5)) }
        // Two checks fail, the third is still under way: 2 failures + 1 under way = the limit, so the fourth still waits.
        #expect(await tracker.endAttempt(keys, .failed, now: now) == nil)
        #expect(await tracker.endAttempt(keys, .failed, now: now) == nil)
        // Woken by each end, it queues again: had it been admitted, it would never wait again.
        let deadline = ContinuousClock.now + .seconds(5)
        while await tracker.waitingAttempts < 1, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        #expect(await tracker.waitingAttempts == 1)
        #expect(await tracker.endAttempt(keys, .failed, now: now) == now.addingTimeInterval(900))
        #expect(await fourth.value == .refused(until: now.addingTimeInterval(900)))
    }
}
