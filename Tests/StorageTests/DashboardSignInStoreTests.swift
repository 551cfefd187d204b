import Foundation
import Storage
import Tenancy
import TestSupport
import Testing

/// Dashboard sign-ins over real repositories, on every backend, with time moved by hand.
@Suite struct DashboardSignInStoreTests {
    let acme = try! TenantName("acme")
    let beta = try! TenantName("beta")

    /// A fresh store on `backend` with tenants acme (MFA as given) and beta and an operator token, and sign-ins over it.
    func open(_ backend: Backend, acmeMFA: Bool) async throws -> (any SystemStore, ManualClock, TenantDirectory, DashboardSignIns, MasterKey) {
        let store = try await backend.makeStore()
        let clock = ManualClock()
        let masterKey = MasterKey.generate()
        let directory = TenantDirectory(
            repositories: store, masterKey: masterKey, configuration: .init(hashParameters: TenantDirectoryTests.cheapHashing), now: { clock.now })
        _ = try await directory.createTenant(acme, mfa: acmeMFA, actor: "test")
        _ = try await directory.createTenant(beta, mfa: false, actor: "test")
        _ = try await directory.issueOperatorToken(actor: "test")
        return (store, clock, directory, DashboardSignIns(repository: store, masterKey: masterKey, now: { clock.now }), masterKey)
    }

    func generation(_ directory: TenantDirectory, _ principal: DashboardPrincipal) async throws -> String {
        switch principal {
        case .tenant(let name): try #require(try await directory.credentialGeneration(ofTenant: name))
        case .operator: try #require(try await directory.operatorCredentialGeneration())
        }
    }

    @Test(arguments: Backend.available)
    func aSignInIsStoredUnderTheHashOfItsIdAndAnotherNodeAcceptsIt(_ backend: Backend) async throws {
        let (store, clock, directory, nodeA, masterKey) = try await open(backend, acmeMFA: true)
        // Another node: its own instance over the same database and master key.
        let nodeB = DashboardSignIns(repository: store, masterKey: masterKey, now: { clock.now })

        let signIn = try await nodeA.create(for: .tenant(acme), generation: try await generation(directory, .tenant(acme)))
        #expect(signIn.id.utf8.count == 43 && signIn.csrfToken != signIn.id)
        #expect(signIn.expiresAt == clock.now.addingTimeInterval(8 * 3600))
        let row = try #require(try await store.dashboardSignIn(idHash: DashboardSignIns.idHash(signIn.id), now: clock.now))
        #expect(row.signIn.idHash.count == 32 && row.signIn.idHash != Array(signIn.id.utf8), "only the SHA-256 of the id is stored")
        #expect(row.signIn.principal == .tenant(acme))
        #expect(row.tokenHash == (try await store.adminTokenHash(for: acme)), "the current credentials come with the row")
        #expect(row.sealedOTPSecret == (try await store.otpSecret(for: acme))?.sealedSecret)
        #expect(try await store.dashboardSignIn(idHash: Array(signIn.id.utf8), now: clock.now) == nil)

        // Another node (same database, same master key) accepts the cookie and derives the same CSRF token.
        let seen = try #require(try await nodeB.signIn(id: signIn.id))
        #expect(seen.principal == .tenant(acme) && seen.csrfToken == signIn.csrfToken)
        #expect(nodeB.isCSRFToken(signIn.csrfToken, of: seen))
        #expect(!nodeB.isCSRFToken(signIn.id, of: seen) && !nodeB.isCSRFToken(nil, of: seen) && !nodeB.isCSRFToken("", of: seen))
        let otherKey = DashboardSignIns(repository: store, masterKey: .generate(), now: { clock.now })
        #expect(try await otherKey.signIn(id: signIn.id)?.csrfToken != signIn.csrfToken, "the CSRF key comes from the master key")

        // Garbage cookies find nothing and do not fail.
        for garbage in ["", "x", String(repeating: "A", count: 43), signIn.id + "A", String(signIn.id.dropLast()) + "!", String(repeating: "é", count: 5000)] {
            #expect(try await nodeB.signIn(id: garbage) == nil)
        }
        #expect(try await nodeB.signIn(id: nil) == nil)

        // Signing out on B ends it for A.
        try await nodeB.end(id: signIn.id)
        #expect(try await nodeA.signIn(id: signIn.id) == nil)
        try await store.close()
    }

    @Test(arguments: Backend.available)
    func eachPrincipalKeepsItsNewestTwentyAndExpiredSignInsGo(_ backend: Backend) async throws {
        let (store, clock, directory, signIns, _) = try await open(backend, acmeMFA: false)

        let betaSignIn = try await signIns.create(for: .tenant(beta), generation: try await generation(directory, .tenant(beta)))
        let operatorSignIn = try await signIns.create(for: .operator, generation: try await generation(directory, .operator))
        var acmeSignIns: [DashboardSignIn] = []
        for _ in 0..<25 { acmeSignIns.append(try await signIns.create(for: .tenant(acme), generation: try await generation(directory, .tenant(acme)))) }
        for (index, signIn) in acmeSignIns.enumerated() {
            #expect((try await signIns.signIn(id: signIn.id) != nil) == (index >= 5), "sign-in \(index)")
        }
        #expect(try await signIns.signIn(id: betaSignIn.id) != nil, "another tenant's sign-in is untouched")
        #expect(try await signIns.signIn(id: operatorSignIn.id) != nil, "the operator's too")

        // Expired at 8 h: refused at once, deleted by the next sign-in (or the periodic pass).
        clock.advance(8 * 3600 - 1)
        #expect(try await signIns.signIn(id: betaSignIn.id) != nil)
        clock.advance(1)
        #expect(try await signIns.signIn(id: betaSignIn.id) == nil)
        #expect(try await store.dashboardSignIn(idHash: DashboardSignIns.idHash(betaSignIn.id), now: clock.now.addingTimeInterval(-1)) != nil)
        let fresh = try await signIns.create(for: .tenant(beta), generation: try await generation(directory, .tenant(beta)))
        #expect(
            try await store.dashboardSignIn(idHash: DashboardSignIns.idHash(betaSignIn.id), now: clock.now.addingTimeInterval(-1)) == nil,
            "a sign-in deletes the expired rows")
        #expect(try await signIns.deleteExpired(at: clock.now) == 0)
        clock.advance(8 * 3600)
        #expect(try await signIns.deleteExpired(at: clock.now) == 1)
        #expect(try await store.dashboardSignIn(idHash: DashboardSignIns.idHash(fresh.id), now: .distantPast) == nil)
        try await store.close()
    }

    @Test(arguments: Backend.available)
    func changedCredentialsOrADeletedTenantEndSignIns(_ backend: Backend) async throws {
        let (store, clock, directory, signIns, _) = try await open(backend, acmeMFA: true)
        func signIn(_ principal: DashboardPrincipal) async throws -> DashboardSignIn {
            try await signIns.create(for: principal, generation: try await generation(directory, principal))
        }
        func rowExists(_ signIn: DashboardSignIn) async throws -> Bool {
            try await store.dashboardSignIn(idHash: DashboardSignIns.idHash(signIn.id), now: clock.now) != nil
        }

        // Rotated elsewhere (the CLI, another node): refused, and the row goes.
        var acmeSignIn = try await signIn(.tenant(acme))
        _ = try await directory.rotateAdminToken(for: acme, actor: "cli")
        #expect(try await signIns.signIn(id: acmeSignIn.id) == nil)
        #expect(try await rowExists(acmeSignIn) == false)
        acmeSignIn = try await signIn(.tenant(acme))
        _ = try await directory.resetOTP(for: acme, actor: "cli")
        #expect(try await signIns.signIn(id: acmeSignIn.id) == nil)

        // A sign-in under a generation read before a rotation is refused.
        let stale = try await generation(directory, .tenant(acme))
        _ = try await directory.rotateAdminToken(for: acme, actor: "cli")
        let raced = try await signIns.create(for: .tenant(acme), generation: stale)
        #expect(try await signIns.signIn(id: raced.id) == nil)

        let operatorSignIn = try await signIn(.operator)
        _ = try await directory.issueOperatorToken(actor: "cli")
        #expect(try await signIns.signIn(id: operatorSignIn.id) == nil)

        // end(principal:) deletes that principal's rows only; deleting a tenant deletes its rows with it.
        acmeSignIn = try await signIn(.tenant(acme))
        let betaSignIn = try await signIn(.tenant(beta))
        let secondOperator = try await signIn(.operator)
        try await signIns.end(principal: .operator)
        #expect(try await rowExists(secondOperator) == false)
        #expect(try await rowExists(acmeSignIn))
        #expect(try await rowExists(betaSignIn))
        try await directory.deleteTenant(beta, actor: "test")
        #expect(try await rowExists(betaSignIn) == false)
        #expect(try await rowExists(acmeSignIn))
        await #expect(throws: TenancyError.self, "no sign-in for a tenant that does not exist") {
            _ = try await signIns.create(for: .tenant(beta), generation: "g")
        }
        try await store.close()
    }
}
