import Foundation
import PostgresNIO
import Tenancy
import WahostBasics

extension PostgresSystemStore {
    public func setMFANumber(_ number: String?, for tenant: TenantName) async throws(RepositoryError) {
        let found = try await run { client, logger in
            try await client.query("UPDATE tenants SET mfa_number = \(number) WHERE name = \(tenant.rawValue) RETURNING name", logger: logger)
                .collect().count
        }
        if found == 0 { throw RepositoryError(.notFound, "no tenant named '\(tenant)'") }
    }

    public func recordWhatsAppCodeRequest(for tenant: TenantName, now: Date, policy: WhatsAppCodePolicy) async throws(RepositoryError) -> Date? {
        let name = tenant.rawValue
        let at = now.milliseconds
        let windowStart = at - policy.window.wholeMilliseconds
        return try await transaction { connection, logger in
            // The tenant's row lock serialises requests from every node.
            let locked = try await connection.query("SELECT name FROM tenants WHERE name = \(name) FOR UPDATE", logger: logger).collect()
            guard !locked.isEmpty else { throw RepositoryError(.notFound, "no tenant named '\(tenant)'") }
            try await connection.query("DELETE FROM whatsapp_code_requests WHERE tenant = \(name) AND at_ms <= \(windowStart)", logger: logger)
            var earlier: [Date] = []
            for try await ms in try await connection.query("SELECT at_ms FROM whatsapp_code_requests WHERE tenant = \(name)", logger: logger)
                .decode(Int64.self)
            {
                earlier.append(Date(milliseconds: ms))
            }
            if let next = policy.nextAllowed(after: earlier, now: now) { return next }
            try await connection.query("INSERT INTO whatsapp_code_requests (tenant, at_ms) VALUES (\(name), \(at))", logger: logger)
            return nil
        }
    }

    public func replaceWhatsAppCode(_ code: StoredWhatsAppCode, for tenant: TenantName) async throws(RepositoryError) {
        let hash = ByteBuffer(bytes: code.hash)
        let issued = code.issuedAt.milliseconds
        let expires = code.expiresAt.milliseconds
        try await run { client, logger in
            try await client.query(
                """
                INSERT INTO whatsapp_codes (tenant, code_hash, issued_at_ms, expires_at_ms, wrong_tries)
                VALUES (\(tenant.rawValue), \(hash), \(issued), \(expires), 0)
                ON CONFLICT (tenant) DO UPDATE SET code_hash = excluded.code_hash, issued_at_ms = excluded.issued_at_ms,
                    expires_at_ms = excluded.expires_at_ms, wrong_tries = 0
                """, logger: logger)
        }
    }

    public func whatsAppCode(for tenant: TenantName) async throws(RepositoryError) -> StoredWhatsAppCode? {
        let rows = try await run { client, logger in
            try await collectAll(
                try await client.query(
                    "SELECT code_hash, issued_at_ms, expires_at_ms, wrong_tries FROM whatsapp_codes WHERE tenant = \(tenant.rawValue)",
                    logger: logger
                ).decode((ByteBuffer, Int64, Int64, Int32).self))
        }
        return rows.first.map {
            StoredWhatsAppCode(
                hash: Array($0.0.readableBytesView), issuedAt: Date(milliseconds: $0.1), expiresAt: Date(milliseconds: $0.2), wrongTries: Int($0.3))
        }
    }

    public func deleteWhatsAppCode(for tenant: TenantName, hash: [UInt8]) async throws(RepositoryError) -> Bool {
        let bytes = ByteBuffer(bytes: hash)
        return try await run { client, logger in
            try await client.query(
                "DELETE FROM whatsapp_codes WHERE tenant = \(tenant.rawValue) AND code_hash = \(bytes) RETURNING tenant", logger: logger
            ).collect().count > 0
        }
    }

    public func countWrongTry(onWhatsAppCode hash: [UInt8], for tenant: TenantName, limit: Int) async throws(RepositoryError) -> Int? {
        let bytes = ByteBuffer(bytes: hash)
        let name = tenant.rawValue
        return try await transaction { connection, logger in
            var tries: Int?
            for try await value in try await connection.query(
                "UPDATE whatsapp_codes SET wrong_tries = wrong_tries + 1 WHERE tenant = \(name) AND code_hash = \(bytes) RETURNING wrong_tries",
                logger: logger
            ).decode(Int32.self) {
                tries = Int(value)
            }
            if let tries, tries >= limit {
                try await connection.query("DELETE FROM whatsapp_codes WHERE tenant = \(name) AND code_hash = \(bytes)", logger: logger)
            }
            return tries
        }
    }

    public func deleteExpiredWhatsAppCodes(at now: Date) async throws(RepositoryError) -> [TenantName] {
        let cutoff = now.milliseconds
        let names = try await run { client, logger in
            try await collectAll(
                try await client.query("DELETE FROM whatsapp_codes WHERE expires_at_ms <= \(cutoff) RETURNING tenant", logger: logger)
                    .decode(String.self))
        }
        return names.compactMap { try? TenantName($0) }
    }
}
