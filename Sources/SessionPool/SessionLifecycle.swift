import Foundation
import Tenancy
import WhatsApp
import WahostBasics

/// One tenant's session lifecycle as a value: events in, actions out, no I/O, no clock.
///
/// The pool's runner carries the actions out in order (write, wipe, then publish, so a state is never shown before
/// what it promises is durable). Lifecycle changes are stamped from the pool's `Epoch`; a restore decided on records
/// read before the last change is refused, so a terminal stop cannot be undone by a stale read.
struct SessionLifecycle: Sendable, Equatable {
    /// What the runner does next, in order.
    enum Action: Sendable, Equatable {
        /// Connect again at once.
        case reconnectNow
        /// Wait out backoff attempt `attempt` (1-based), then report `connecting` and connect again.
        case backOff(attempt: Int)
        /// Record the desired state durably.
        case recordDesired(DesiredSessionState)
        /// Wipe the tenant's stored credentials.
        case wipeCredentials
        /// Publish this status.
        case publish(SessionStatus)
        /// Count a reconnect.
        case countReconnect
        /// Count a pairing outcome.
        case countPairing(PairingOutcome)
        /// Log that the session stopped for good, and why.
        case logStoppedForGood(DisconnectReason)
        /// Log that the account logged out and its credentials are wiped.
        case logLoggedOut(DisconnectReason)
        /// Log that pairing succeeded for this account.
        case logPaired(String)
        /// Cancel the link-code expiry timer.
        case cancelCodeExpiry
        /// The runner ends.
        case end
    }

    /// How a pairing ended, for the metrics.
    enum PairingOutcome: String, Sendable { case succeeded, timedOut = "timed_out", failed }

    /// Whether a runner is active.
    private(set) var running = false
    /// Set once the runner decided to stop for good: late events of the ended connection are not applied.
    private(set) var ending = false
    /// Whether an operator-side stop (restart, logout, lease lost, shutdown) is under way.
    private(set) var stopping = false
    /// The state that stop ends the session in; nil when the caller publishes the end itself (logout, after the wipe).
    private(set) var stopState: SessionState?
    /// Whether a terminal reason met during the stop is still recorded (not when the lease went to another node).
    private(set) var stopKeepsTerminal = true
    /// Whether the current connection logged in.
    private(set) var loggedInThisRun = false
    /// Reconnect attempts since the last login.
    private(set) var attempt = 0

    // MARK: Events

    /// A runner starts under lease on `node`.
    mutating func started(on node: String, status: SessionStatus) -> [Action] {
        running = true
        ending = false
        stopping = false
        stopState = nil
        attempt = 0
        var next = status
        next.state = .connecting
        next.ownerNode = node
        next.qr = nil
        next.pairingMethod = nil
        return [.publish(next)]
    }

    /// A new connection attempt begins.
    mutating func connecting() {
        loggedInThisRun = false
    }

    /// An operator-side stop (restart, logout, lease lost, shutdown) asks the runner to end, in `state` if given.
    /// A terminal reason the connection ends with meanwhile is still recorded, unless `leaseLost` (another node runs
    /// the session now, and its connection is what replaced ours).
    mutating func stopRequested(_ state: SessionState?, leaseLost: Bool = false) {
        stopping = true
        stopState = state
        stopKeepsTerminal = !leaseLost
    }

    /// The operator-side stop finished waiting for the runner.
    mutating func stopCompleted() {
        stopping = false
        stopState = nil
    }

    /// The connection ended with `reason`; `paired` says whether the client holds a paired account.
    mutating func connectionEnded(_ reason: DisconnectReason, paired: Bool, cancelled: Bool, status: SessionStatus) -> [Action] {
        if loggedInThisRun { attempt = 0 }
        var next = status
        if stopping {
            ending = true
            var actions: [Action] = []
            if stopKeepsTerminal {
                switch reason.disposition {
                case .stopAndWipeCredentials: actions = [.logLoggedOut(reason), .wipeCredentials, .recordDesired(.stopped)]
                case .stop where reason != .requested && reason != .pairingTimedOut:
                    actions = [.logStoppedForGood(reason), .recordDesired(.stopped)]
                default: break
                }
            }
            guard let stopState else { return actions + [.end] }
            next.state = stopState
            return actions + [.publish(next), .end]
        }
        if cancelled {
            next.state = .stopped
            return [.publish(next), .end]
        }
        switch reason.disposition {
        case .reconnectNow:
            next.state = .connecting
            return [.countReconnect, .publish(next), .reconnectNow]
        case .reconnectWithBackoff:
            guard paired else {
                // An unpaired connection is only worth having while someone pairs: report and stop.
                next.state = .stopped
                next.qr = nil
                next.pairingMethod = nil
                next.lastError = reason.description
                return [.countPairing(.failed), .publish(next), .end]
            }
            attempt += 1
            next.state = .reconnecting
            next.lastError = reason.description
            return [.countReconnect, .publish(next), .backOff(attempt: attempt)]
        case .stop:
            ending = true
            let state: SessionState
            var actions: [Action] = []
            switch reason {
            case .requested: state = .stopped
            case .pairingTimedOut:
                state = .stopped
                actions.append(.countPairing(.timedOut))
            case .replaced: state = .replaced
            default: state = .failed
            }
            if state.isTerminal { actions += [.logStoppedForGood(reason), .recordDesired(.stopped)] }
            next.state = state
            next.qr = nil
            next.pairingMethod = nil
            if reason != .requested { next.lastError = reason.description }
            return actions + [.publish(next), .end]
        case .stopAndWipeCredentials:
            ending = true
            next.state = .loggedOut
            next.me = nil
            next.qr = nil
            next.pairingMethod = nil
            next.lastError = reason.description
            return [.logLoggedOut(reason), .wipeCredentials, .recordDesired(.stopped), .publish(next), .end]
        }
    }

    /// The backoff wait ended; `cancelled` when the runner was cancelled meanwhile.
    func backoffEnded(cancelled: Bool, status: SessionStatus) -> [Action] {
        var next = status
        if cancelled {
            next.state = .stopped
            return [.publish(next), .end]
        }
        next.state = .connecting
        return [.publish(next)]
    }

    /// Before a reconnect the lease turned out to be another node's: the runner ends, stopped, and records nothing.
    mutating func endedBeforeReconnect(status: SessionStatus) -> [Action] {
        ending = true
        var next = status
        next.state = .stopped
        return [.publish(next), .end]
    }

    /// The runner ended; its lease is released by the caller.
    mutating func runnerEnded(status: SessionStatus) -> [Action] {
        running = false
        var next = status
        next.ownerNode = nil
        return [.cancelCodeExpiry, .publish(next)]
    }

    /// An event of the client; events of a runner that is not active or is ending are dropped.
    mutating func clientEvent(_ event: WhatsAppEvent, status: SessionStatus, now: Date) -> [Action] {
        guard running, !ending else { return [] }
        var next = status
        switch event {
        case .qrCode(let text, let lifetime):
            guard status.pairingMethod != .code else { return [] }
            next.state = .pairing
            next.qr = text
            next.qrExpiresAt = now.addingTimeInterval(lifetime.timeInterval)
            next.pairingMethod = .qr
            return [.publish(next)]
        case .paired(let jid):
            next.me = jid
            next.qr = nil
            next.qrExpiresAt = nil
            next.pairingMethod = nil
            next.state = .connecting
            return [.countPairing(.succeeded), .logPaired(jid), .cancelCodeExpiry, .publish(next), .recordDesired(.running)]
        case .loggedIn(let jid):
            loggedInThisRun = true
            next.state = .connected
            next.me = jid
            next.qr = nil
            next.qrExpiresAt = nil
            next.pairingMethod = nil
            next.lastError = nil
            return [.publish(next)]
        case .disconnected:
            return []
        }
    }

    // MARK: Queries

    /// Whether a restore decided on records read at `readAt` may start a runner, the tenant's last lifecycle change
    /// being stamped `lastChange`: not while a runner is active, not on a read older than the change.
    func admitsRestore(decidedAt readAt: UInt64, lastChange: UInt64) -> Bool {
        !running && lastChange <= readAt
    }
}
