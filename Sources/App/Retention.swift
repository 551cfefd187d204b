import Foundation
import Logging
import ServiceLifecycle
import Tenancy

/// Deletes entries of one log (audit, events) older than its retention period, at start and every `interval`,
/// until shutdown; a failed pass is logged and tried again next time.
public struct LogRetention: Service {
    /// The log's name in log lines (`audit log`, `event log`).
    public let name: String
    /// How long entries are kept.
    public let retention: Duration
    /// The time between passes.
    public let interval: Duration
    private let trim: @Sendable (Date) async throws -> Int
    private let logger: Logger

    public init(
        name: String, retention: Duration, interval: Duration, logger: Logger, trim: @escaping @Sendable (_ cutoff: Date) async throws -> Int
    ) {
        self.name = name
        self.retention = retention
        self.interval = interval
        self.trim = trim
        self.logger = logger
    }

    /// The audit log: `WAHOST_AUDIT_RETENTION_DAYS`, every 6 hours.
    public static func audit(_ retention: Duration, _ audit: any AuditLogRepository, logger: Logger) -> LogRetention {
        LogRetention(name: "audit log", retention: retention, interval: .seconds(6 * 3600), logger: logger) {
            try await audit.trimAudit(olderThan: $0)
        }
    }

    /// The event log: `WAHOST_EVENT_RETENTION_HOURS`, never under 24 hours, every hour.
    public static func events(_ retention: Duration, _ log: any EventLogRepository, logger: Logger) -> LogRetention {
        LogRetention(name: "event log", retention: max(retention, .seconds(86_400)), interval: .seconds(3600), logger: logger) {
            try await log.trimEvents(olderThan: $0)
        }
    }

    /// Expired WhatsApp one-time codes: deleted (and audited as expired) every minute.
    public static func whatsAppCodes(_ tenants: TenantDirectory, logger: Logger) -> LogRetention {
        LogRetention(name: "WhatsApp one-time codes", retention: .zero, interval: .seconds(60), logger: logger) {
            try await tenants.expireWhatsAppCodes(at: $0)
        }
    }

    /// Expired dashboard sign-ins: deleted every 10 minutes (each sign-in also deletes the expired ones).
    public static func dashboardSignIns(_ signIns: DashboardSignIns, logger: Logger) -> LogRetention {
        LogRetention(name: "dashboard sign-ins", retention: .zero, interval: .seconds(600), logger: logger) {
            try await signIns.deleteExpired(at: $0)
        }
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await trimOnce()
                // Cancelled by a graceful shutdown: the loop ends; a thrown CancellationError would fail the process's exit.
                try? await Task.sleep(for: interval)
            }
        }
    }

    /// One pass: deletes what is older than the retention period.
    public func trimOnce(now: Date = Date()) async {
        let cutoff = now.addingTimeInterval(-Double(retention.components.seconds))
        do {
            let deleted = try await trim(cutoff)
            if deleted > 0 { logger.info("\(name) trimmed", metadata: ["deleted": "\(deleted)"]) }
        } catch {
            logger.storageFailure("\(name) trim failed", error)
        }
    }
}
