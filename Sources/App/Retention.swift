import Foundation
import Logging
import ServiceLifecycle
import Tenancy

/// Deletes audit entries older than the retention period, at start and every 6 hours, until shutdown.
public struct AuditRetention: Service {
    /// How long entries are kept.
    public let retention: Duration
    private let audit: any AuditLogRepository
    private let logger: Logger

    public init(retention: Duration, audit: any AuditLogRepository, logger: Logger) {
        self.retention = retention
        self.audit = audit
        self.logger = logger
    }

    public func run() async throws {
        try await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await trimOnce()
                try await Task.sleep(for: .seconds(6 * 3600))
            }
        }
    }

    /// One pass: deletes what is older than the retention period; a failure is logged and retried next time.
    public func trimOnce(now: Date = Date()) async {
        let cutoff = now.addingTimeInterval(-Double(retention.components.seconds))
        do {
            let deleted = try await audit.trimAudit(olderThan: cutoff)
            if deleted > 0 { logger.info("audit log trimmed", metadata: ["deleted": "\(deleted)"]) }
        } catch {
            logger.warning("audit log trim failed", metadata: ["error": "\(error)"])
        }
    }
}

/// Deletes events older than the retention period from the per-tenant event log, at start and every hour.
public struct EventRetention: Service {
    /// How long events are kept (at least 24 hours).
    public let retention: Duration
    private let log: any EventLogRepository
    private let logger: Logger

    public init(retention: Duration, log: any EventLogRepository, logger: Logger) {
        self.retention = max(retention, .seconds(86_400))
        self.log = log
        self.logger = logger
    }

    public func run() async throws {
        try await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await trimOnce()
                try await Task.sleep(for: .seconds(3600))
            }
        }
    }

    /// One pass; a failure is logged and retried next time.
    public func trimOnce(now: Date = Date()) async {
        let cutoff = now.addingTimeInterval(-Double(retention.components.seconds))
        do {
            let deleted = try await log.trimEvents(olderThan: cutoff)
            if deleted > 0 { logger.info("event log trimmed", metadata: ["deleted": "\(deleted)"]) }
        } catch {
            logger.warning("event log trim failed", metadata: ["error": "\(error)"])
        }
    }
}
