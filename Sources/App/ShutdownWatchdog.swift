import Foundation
import Logging
import ServiceLifecycle

/// Ends the process if a graceful shutdown has not finished within `limit`: a stop must never hang (a process
/// manager or a cluster waits on it), whatever a service still awaits. Last in its group, so it hears the signal first.
public struct ShutdownWatchdog: Service {
    public let limit: Duration
    private let logger: Logger

    public init(limit: Duration, logger: Logger) {
        self.limit = limit
        self.logger = logger
    }

    public func run() async throws {
        try? await gracefulShutdown()
        let (limit, logger) = (self.limit, self.logger)
        // Detached: the service returns at once and the timer outlives the group; a normal exit ends it with the process.
        Task.detached {
            try? await Task.sleep(for: limit)
            logger.critical("shutdown did not finish; exiting", metadata: ["after_seconds": "\(limit.components.seconds)"])
            exit(1)
        }
    }
}
