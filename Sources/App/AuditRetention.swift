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
