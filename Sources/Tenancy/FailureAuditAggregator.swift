import Foundation
import Synchronization

/// Decides which anonymous authentication failures get an audit row: the first of each (action, tenant, client) per
/// window, every lockout, and in the next row how many were folded in; so a flood of bad tokens writes a few rows.
public final class FailureAuditAggregator: Sendable {
    /// What to do with one failure.
    public enum Decision: Equatable, Sendable {
        /// Write a row with this detail.
        case write(detail: String?)
        /// Count it into the current window's next row.
        case fold
    }

    private struct Window {
        var startedAt: Date
        var folded: Int
    }

    /// How long one row stands for the failures after it.
    let window: TimeInterval
    /// Windows tracked at most; stale ones are dropped first.
    let capacity: Int
    private let windows = Mutex<[String: Window]>([:])

    public init(window: TimeInterval = 60, capacity: Int = 10_000) {
        self.window = window
        self.capacity = capacity
    }

    /// Whether this failure gets a row of its own, and its detail.
    public func record(key: String, locking: Bool, now: Date) -> Decision {
        windows.withLock { windows in
            if var current = windows[key], current.startedAt <= now, now.timeIntervalSince(current.startedAt) < window {
                guard locking else {
                    current.folded += 1
                    windows[key] = current
                    return .fold
                }
            }
            let folded = windows[key]?.folded ?? 0
            if windows[key] == nil, windows.count >= capacity {
                windows = windows.filter { now.timeIntervalSince($0.value.startedAt) < window }
                if windows.count >= capacity { windows.removeAll() }
            }
            windows[key] = Window(startedAt: now, folded: 0)
            let parts = (locking ? ["locked out"] : []) + (folded > 0 ? ["\(folded) more like it before this"] : [])
            return .write(detail: parts.isEmpty ? nil : parts.joined(separator: "; "))
        }
    }
}
