import Foundation
import GRDB
import Tenancy
import WahostBasics

extension SQLiteSystemStore {
    public func setMFANumber(_ number: String?, for tenant: TenantName) async throws(RepositoryError) {
        try await write { db in
            try db.execute(sql: "UPDATE tenants SET mfa_number = ? WHERE name = ?", arguments: [number, tenant.rawValue])
            if db.changesCount == 0 { throw RepositoryError(.notFound, "no tenant named '\(tenant)'") }
        }
    }

    public func recordWhatsAppCodeRequest(for tenant: TenantName, now: Date, policy: WhatsAppCodePolicy) async throws(RepositoryError) -> Date? {
        // One write transaction: SQLite serialises writers, so two requests cannot both pass the check.
        try await write { db in
            let windowStart = now.milliseconds - policy.window.wholeMilliseconds
            try db.execute(sql: "DELETE FROM whatsapp_code_requests WHERE tenant = ? AND at_ms <= ?", arguments: [tenant.rawValue, windowStart])
            let earlier = try Int64.fetchAll(db, sql: "SELECT at_ms FROM whatsapp_code_requests WHERE tenant = ?", arguments: [tenant.rawValue])
            if let next = policy.nextAllowed(after: earlier.map { Date(milliseconds: $0) }, now: now) { return next }
            try db.execute(sql: "INSERT INTO whatsapp_code_requests (tenant, at_ms) VALUES (?, ?)", arguments: [tenant.rawValue, now.milliseconds])
            return nil
        }
    }

    public func replaceWhatsAppCode(_ code: StoredWhatsAppCode, for tenant: TenantName) async throws(RepositoryError) {
        try await write { db in
            try db.execute(
                sql: """
                    INSERT INTO whatsapp_codes (tenant, code_hash, issued_at_ms, expires_at_ms, wrong_tries) VALUES (?, ?, ?, ?, 0)
                    ON CONFLICT(tenant) DO UPDATE SET code_hash = excluded.code_hash, issued_at_ms = excluded.issued_at_ms,
                        expires_at_ms = excluded.expires_at_ms, wrong_tries = 0
                    """,
                arguments: [tenant.rawValue, Data(code.hash), code.issuedAt.milliseconds, code.expiresAt.milliseconds])
        }
    }

    public func whatsAppCode(for tenant: TenantName) async throws(RepositoryError) -> StoredWhatsAppCode? {
        try await read { db in
            try Row.fetchOne(
                db, sql: "SELECT code_hash, issued_at_ms, expires_at_ms, wrong_tries FROM whatsapp_codes WHERE tenant = ?",
                arguments: [tenant.rawValue]
            ).map {
                StoredWhatsAppCode(
                    hash: Array($0["code_hash"] as Data), issuedAt: Date(milliseconds: $0["issued_at_ms"]),
                    expiresAt: Date(milliseconds: $0["expires_at_ms"]), wrongTries: $0["wrong_tries"])
            }
        }
    }

    public func deleteWhatsAppCode(for tenant: TenantName, hash: [UInt8]) async throws(RepositoryError) -> Bool {
        try await write { db in
            try db.execute(sql: "DELETE FROM whatsapp_codes WHERE tenant = ? AND code_hash = ?", arguments: [tenant.rawValue, Data(hash)])
            return db.changesCount > 0
        }
    }

    public func countWrongTry(onWhatsAppCode hash: [UInt8], for tenant: TenantName, limit: Int) async throws(RepositoryError) -> Int? {
        try await write { db in
            let arguments: StatementArguments = [tenant.rawValue, Data(hash)]
            try db.execute(sql: "UPDATE whatsapp_codes SET wrong_tries = wrong_tries + 1 WHERE tenant = ? AND code_hash = ?", arguments: arguments)
            guard db.changesCount > 0 else { return nil }
            let tries = try Int.fetchOne(db, sql: "SELECT wrong_tries FROM whatsapp_codes WHERE tenant = ? AND code_hash = ?", arguments: arguments)
            if let tries, tries >= limit {
                try db.execute(sql: "DELETE FROM whatsapp_codes WHERE tenant = ? AND code_hash = ?", arguments: arguments)
            }
            return tries
        }
    }

    public func deleteExpiredWhatsAppCodes(at now: Date) async throws(RepositoryError) -> [TenantName] {
        try await write { db in
            let names = try String.fetchAll(db, sql: "SELECT tenant FROM whatsapp_codes WHERE expires_at_ms <= ?", arguments: [now.milliseconds])
            try db.execute(sql: "DELETE FROM whatsapp_codes WHERE expires_at_ms <= ?", arguments: [now.milliseconds])
            return names.compactMap { try? TenantName($0) }
        }
    }
}
