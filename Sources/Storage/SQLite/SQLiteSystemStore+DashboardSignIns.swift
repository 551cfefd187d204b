import Foundation
import GRDB
import Tenancy
import WahostBasics

extension SQLiteSystemStore {
    public func insertDashboardSignIn(_ signIn: StoredDashboardSignIn, keepingAtMost limit: Int, now: Date) async throws(RepositoryError) {
        // One write transaction: SQLite serialises writers, so two sign-ins of one principal cannot both miss the limit.
        try await write { db in
            try db.execute(sql: "DELETE FROM dashboard_signins WHERE expires_at_ms <= ?", arguments: [now.milliseconds])
            let tenant = DashboardSignInSQL.tenantColumn(signIn.principal)
            try db.execute(
                sql: "INSERT INTO dashboard_signins (id_hash, tenant, generation, created_at_ms, expires_at_ms) VALUES (?, ?, ?, ?, ?)",
                arguments: [Data(signIn.idHash), tenant, signIn.credentialGeneration, signIn.createdAt.milliseconds, signIn.expiresAt.milliseconds])
            let principal = tenant == nil ? "tenant IS NULL" : "tenant = ?"
            var arguments: StatementArguments = tenant.map { [$0, $0] } ?? []
            arguments += [max(0, limit)]
            try db.execute(
                sql: """
                    DELETE FROM dashboard_signins WHERE \(principal)
                    AND seq NOT IN (SELECT seq FROM dashboard_signins WHERE \(principal) ORDER BY seq DESC LIMIT ?)
                    """,
                arguments: arguments)
        }
    }

    public func dashboardSignIn(idHash: [UInt8], now: Date) async throws(RepositoryError) -> DashboardSignInLookup? {
        // Every dashboard request asks this: one cached statement over primary keys, no snapshot transaction around it.
        let found = try await readOneStatement { db -> (String?, String, Int64, Int64, String?, Data?)? in
            try Row.fetchOne(db.cachedStatement(sql: Self.dashboardSignInLookup), arguments: [Data(idHash), now.milliseconds]).map {
                ($0["tenant"], $0["generation"], $0["created_at_ms"], $0["expires_at_ms"], $0["phc"], $0["otp"])
            }
        }
        guard let found else { return nil }
        let signIn = StoredDashboardSignIn(
            idHash: idHash, principal: try DashboardSignInSQL.principal(found.0), credentialGeneration: found.1,
            createdAt: Date(milliseconds: found.2), expiresAt: Date(milliseconds: found.3))
        return DashboardSignInLookup(signIn: signIn, tokenHash: found.4, sealedOTPSecret: found.5.map(Array.init))
    }

    private static let dashboardSignInLookup = DashboardSignInSQL.lookupSelect + " WHERE s.id_hash = ? AND s.expires_at_ms > ?"

    public func deleteDashboardSignIn(idHash: [UInt8]) async throws(RepositoryError) -> Bool {
        try await write { db in
            try db.execute(sql: "DELETE FROM dashboard_signins WHERE id_hash = ?", arguments: [Data(idHash)])
            return db.changesCount > 0
        }
    }

    public func deleteDashboardSignIns(of principal: DashboardPrincipal) async throws(RepositoryError) -> Int {
        try await write { db in
            if let tenant = DashboardSignInSQL.tenantColumn(principal) {
                try db.execute(sql: "DELETE FROM dashboard_signins WHERE tenant = ?", arguments: [tenant])
            } else {
                try db.execute(sql: "DELETE FROM dashboard_signins WHERE tenant IS NULL")
            }
            return db.changesCount
        }
    }

    public func deleteExpiredDashboardSignIns(at now: Date) async throws(RepositoryError) -> Int {
        try await write { db in
            try db.execute(sql: "DELETE FROM dashboard_signins WHERE expires_at_ms <= ?", arguments: [now.milliseconds])
            return db.changesCount
        }
    }
}
