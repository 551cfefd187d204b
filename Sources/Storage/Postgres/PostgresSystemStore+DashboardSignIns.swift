import Foundation
import PostgresNIO
import Tenancy
import WahostBasics

extension PostgresSystemStore {
    public func insertDashboardSignIn(_ signIn: StoredDashboardSignIn, keepingAtMost limit: Int, now: Date) async throws(RepositoryError) {
        let hash = ByteBuffer(bytes: signIn.idHash)
        let tenant = DashboardSignInSQL.tenantColumn(signIn.principal)
        let keep = Int64(max(0, limit))
        try await transaction { connection, logger in
            // The principal's row lock serialises its sign-ins from every node, so none slips past the limit.
            if let tenant {
                let locked = try await connection.query("SELECT name FROM tenants WHERE name = \(tenant) FOR NO KEY UPDATE", logger: logger).collect()
                guard !locked.isEmpty else { throw RepositoryError(.notFound, "no tenant named '\(tenant)'") }
            } else {
                try await connection.query("SELECT id FROM operator_tokens WHERE id = 1 FOR NO KEY UPDATE", logger: logger)
            }
            try await connection.query("DELETE FROM dashboard_signins WHERE expires_at_ms <= \(now.milliseconds)", logger: logger)
            try await connection.query(
                """
                INSERT INTO dashboard_signins (id_hash, tenant, generation, created_at_ms, expires_at_ms)
                VALUES (\(hash), \(tenant), \(signIn.credentialGeneration), \(signIn.createdAt.milliseconds), \(signIn.expiresAt.milliseconds))
                """, logger: logger)
            if let tenant {
                try await connection.query(
                    """
                    DELETE FROM dashboard_signins WHERE tenant = \(tenant)
                    AND seq NOT IN (SELECT seq FROM dashboard_signins WHERE tenant = \(tenant) ORDER BY seq DESC LIMIT \(keep))
                    """, logger: logger)
            } else {
                try await connection.query(
                    """
                    DELETE FROM dashboard_signins WHERE tenant IS NULL
                    AND seq NOT IN (SELECT seq FROM dashboard_signins WHERE tenant IS NULL ORDER BY seq DESC LIMIT \(keep))
                    """, logger: logger)
            }
        }
    }

    public func dashboardSignIn(idHash: [UInt8], now: Date) async throws(RepositoryError) -> DashboardSignInLookup? {
        let hash = ByteBuffer(bytes: idHash)
        let rows = try await run { client, logger in
            try await collectAll(
                try await client.query(
                    "\(unescaped: DashboardSignInSQL.lookupSelect) WHERE s.id_hash = \(hash) AND s.expires_at_ms > \(now.milliseconds)",
                    logger: logger
                ).decode((String?, String, Int64, Int64, String?, ByteBuffer?).self))
        }
        guard let row = rows.first else { return nil }
        let signIn = StoredDashboardSignIn(
            idHash: idHash, principal: try DashboardSignInSQL.principal(row.0), credentialGeneration: row.1,
            createdAt: Date(milliseconds: row.2), expiresAt: Date(milliseconds: row.3))
        return DashboardSignInLookup(signIn: signIn, tokenHash: row.4, sealedOTPSecret: row.5.map { Array($0.readableBytesView) })
    }

    public func deleteDashboardSignIn(idHash: [UInt8]) async throws(RepositoryError) -> Bool {
        let hash = ByteBuffer(bytes: idHash)
        return try await run { client, logger in
            try await client.query("DELETE FROM dashboard_signins WHERE id_hash = \(hash) RETURNING seq", logger: logger).collect().count > 0
        }
    }

    public func deleteDashboardSignIns(of principal: DashboardPrincipal) async throws(RepositoryError) -> Int {
        let tenant = DashboardSignInSQL.tenantColumn(principal)
        return try await run { client, logger in
            if let tenant {
                return try await client.query("DELETE FROM dashboard_signins WHERE tenant = \(tenant) RETURNING seq", logger: logger).collect().count
            }
            return try await client.query("DELETE FROM dashboard_signins WHERE tenant IS NULL RETURNING seq", logger: logger).collect().count
        }
    }

    public func deleteExpiredDashboardSignIns(at now: Date) async throws(RepositoryError) -> Int {
        try await run { client, logger in
            try await client.query(
                "DELETE FROM dashboard_signins WHERE expires_at_ms <= \(now.milliseconds) RETURNING seq", logger: logger
            ).collect().count
        }
    }
}
