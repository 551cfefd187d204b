import Foundation
import Tenancy
import Testing
import WhatsApp

@testable import SessionPool

/// The pool's lifecycle value on its own: no socket, no database, no clock.
@Suite struct SessionLifecycleTests {
    static let tenant = try! TenantName("acme")
    static let connected = SessionStatus(tenant: tenant, state: .connected, me: "15551000001:1@s.whatsapp.net", ownerNode: "node-a")

    /// A lifecycle whose runner started and whose connection logged in.
    static func running() -> (SessionLifecycle, SessionStatus) {
        var lifecycle = SessionLifecycle()
        _ = lifecycle.started(on: "node-a", status: SessionStatus(tenant: tenant, state: .stopped))
        lifecycle.connecting()
        _ = lifecycle.clientEvent(.loggedIn(jid: "15551000001:1@s.whatsapp.net"), status: connected, now: Date())
        return (lifecycle, connected)
    }

    static func with(_ status: SessionStatus, _ change: (inout SessionStatus) -> Void) -> SessionStatus {
        var copy = status
        change(&copy)
        return copy
    }

    struct EndCase: Sendable, CustomTestStringConvertible {
        let reason: DisconnectReason
        let paired: Bool
        let expected: @Sendable (SessionStatus) -> [SessionLifecycle.Action]
        var testDescription: String { "\(reason) paired=\(paired)" }
    }

    static let endCases: [EndCase] = [
        EndCase(reason: .restartRequired, paired: true) { s in
            [.countReconnect, .publish(with(s) { $0.state = .connecting }), .reconnectNow]
        },
        EndCase(reason: .connectionClosed, paired: true) { s in
            [.countReconnect, .publish(with(s) { $0.state = .reconnecting; $0.lastError = "connection closed" }), .backOff(attempt: 1)]
        },
        EndCase(reason: .keepaliveTimeout, paired: true) { s in
            [.countReconnect, .publish(with(s) { $0.state = .reconnecting; $0.lastError = "keepalive timed out" }), .backOff(attempt: 1)]
        },
        EndCase(reason: .connectionClosed, paired: false) { s in
            [.countPairing(.failed), .publish(with(s) { $0.state = .stopped; $0.lastError = "connection closed" }), .end]
        },
        EndCase(reason: .replaced, paired: true) { s in
            [.logStoppedForGood(.replaced), .recordDesired(.stopped),
             .publish(with(s) { $0.state = .replaced; $0.lastError = "replaced by another connection" }), .end]
        },
        EndCase(reason: .clientOutdated, paired: true) { s in
            [.logStoppedForGood(.clientOutdated), .recordDesired(.stopped),
             .publish(with(s) { $0.state = .failed; $0.lastError = "client version outdated (405)" }), .end]
        },
        EndCase(reason: .loggedOut(code: 401), paired: true) { s in
            [.logLoggedOut(.loggedOut(code: 401)), .wipeCredentials, .recordDesired(.stopped),
             .publish(with(s) { $0.state = .loggedOut; $0.me = nil; $0.lastError = "logged out (401)" }), .end]
        },
        EndCase(reason: .requested, paired: true) { s in [.publish(with(s) { $0.state = .stopped }), .end] },
        EndCase(reason: .pairingTimedOut, paired: false) { s in
            [.countPairing(.timedOut), .publish(with(s) { $0.state = .stopped; $0.lastError = "pairing timed out" }), .end]
        },
    ]

    @Test(arguments: endCases)
    func aConnectionEndDecidesTheNextStep(_ testCase: EndCase) {
        var (lifecycle, status) = Self.running()
        let actions = lifecycle.connectionEnded(testCase.reason, paired: testCase.paired, cancelled: false, status: status)
        #expect(actions == testCase.expected(status))
        status = actions.compactMap { if case .publish(let s) = $0 { s } else { nil } }.last ?? status
        if testCase.reason.disposition == .stop || testCase.reason.disposition == .stopAndWipeCredentials {
            #expect(lifecycle.clientEvent(.loggedIn(jid: "x"), status: status, now: Date()).isEmpty, "late events are dropped")
        }
    }

    @Test func backoffAttemptsGrowUntilALoginResetsThem() {
        var (lifecycle, status) = Self.running()
        for expected in 1...3 {
            lifecycle.connecting()
            let actions = lifecycle.connectionEnded(.connectionClosed, paired: true, cancelled: false, status: status)
            #expect(actions.last == .backOff(attempt: expected))
        }
        lifecycle.connecting()
        _ = lifecycle.clientEvent(.loggedIn(jid: "j"), status: status, now: Date())
        status.state = .connected
        #expect(lifecycle.connectionEnded(.connectionClosed, paired: true, cancelled: false, status: status).last == .backOff(attempt: 1))
    }

    @Test func aCancelledBackoffStopsAndAnElapsedOneConnects() {
        let (lifecycle, status) = Self.running()
        #expect(lifecycle.backoffEnded(cancelled: true, status: status) == [.publish(Self.with(status) { $0.state = .stopped }), .end])
        #expect(lifecycle.backoffEnded(cancelled: false, status: status) == [.publish(Self.with(status) { $0.state = .connecting })])
    }

    @Test func aLeaseLostBeforeAReconnectStopsAndDropsTheOldConnectionsLateEvents() {
        var (lifecycle, status) = Self.running()
        let reconnecting = Self.with(status) { $0.state = .reconnecting }
        #expect(lifecycle.endedBeforeReconnect(status: reconnecting) == [.publish(Self.with(status) { $0.state = .stopped }), .end])
        #expect(lifecycle.clientEvent(.loggedIn(jid: "15551000001:1@s.whatsapp.net"), status: status, now: Date()).isEmpty)
    }

    @Test func anOperatorStopWinsOverTheReasonAndLogoutPublishesNothing() {
        var (lifecycle, status) = Self.running()
        lifecycle.stopRequested(.stopped)
        #expect(lifecycle.connectionEnded(.connectionClosed, paired: true, cancelled: true, status: status)
            == [.publish(Self.with(status) { $0.state = .stopped }), .end])
        (lifecycle, status) = Self.running()
        lifecycle.stopRequested(nil)
        #expect(lifecycle.connectionEnded(.connectionClosed, paired: true, cancelled: true, status: status) == [.end])
        #expect(lifecycle.clientEvent(.loggedIn(jid: "j"), status: status, now: Date()).isEmpty)
    }

    @Test func aTerminalEndDuringAnOperatorStopIsStillRecordedUnlessTheLeaseWasLost() {
        var (lifecycle, status) = Self.running()
        lifecycle.stopRequested(.stopped)
        #expect(lifecycle.connectionEnded(.replaced, paired: true, cancelled: true, status: status)
            == [.logStoppedForGood(.replaced), .recordDesired(.stopped), .publish(Self.with(status) { $0.state = .stopped }), .end])
        (lifecycle, status) = Self.running()
        lifecycle.stopRequested(.stopped, leaseLost: true)
        #expect(lifecycle.connectionEnded(.replaced, paired: true, cancelled: true, status: status)
            == [.publish(Self.with(status) { $0.state = .stopped }), .end], "the other node's connection replaced ours")
        (lifecycle, status) = Self.running()
        lifecycle.stopRequested(nil)
        #expect(lifecycle.connectionEnded(.loggedOut(code: 401), paired: true, cancelled: true, status: status)
            == [.logLoggedOut(.loggedOut(code: 401)), .wipeCredentials, .recordDesired(.stopped), .end])
    }

    // MARK: Orderings of the `replaced` issue, as the pool sees them

    @Test func replacedOnTheLoginAfterA515IsTerminal() {
        var (lifecycle, status) = Self.running()
        #expect(lifecycle.connectionEnded(.restartRequired, paired: true, cancelled: false, status: status).last == .reconnectNow)
        lifecycle.connecting()
        _ = lifecycle.clientEvent(.loggedIn(jid: "j"), status: status, now: Date())
        let actions = lifecycle.connectionEnded(.replaced, paired: true, cancelled: false, status: status)
        #expect(actions.contains(.recordDesired(.stopped)))
        #expect(actions.last == .end)
        #expect(!actions.contains(.reconnectNow) && !actions.contains { if case .backOff = $0 { true } else { false } })
    }

    @Test func replacedAfterABackoffIsTerminal() {
        var (lifecycle, status) = Self.running()
        #expect(lifecycle.connectionEnded(.keepaliveTimeout, paired: true, cancelled: false, status: status).last == .backOff(attempt: 1))
        lifecycle.connecting()
        #expect(lifecycle.connectionEnded(.replaced, paired: true, cancelled: false, status: status).last == .end)
    }

    @Test func eventsOfTheEndedConnectionAreDroppedUntilARestartStartsANewRunner() {
        var (lifecycle, status) = Self.running()
        _ = lifecycle.connectionEnded(.replaced, paired: true, cancelled: false, status: status)
        status.state = .replaced
        #expect(lifecycle.clientEvent(.paired(jid: "j"), status: status, now: Date()).isEmpty, "no desired-state write revives it")
        #expect(lifecycle.clientEvent(.loggedIn(jid: "j"), status: status, now: Date()).isEmpty)
        _ = lifecycle.runnerEnded(status: status)
        #expect(lifecycle.clientEvent(.loggedIn(jid: "j"), status: status, now: Date()).isEmpty, "no runner, no events")
        let restarted = lifecycle.started(on: "node-a", status: status)
        #expect(restarted == [.publish(Self.with(status) { $0.state = .connecting; $0.ownerNode = "node-a" })])
        #expect(lifecycle.clientEvent(.loggedIn(jid: "j"), status: status, now: Date()).count == 1)
    }

    @Test func aRestoreDecidedBeforeTheLastChangeIsRefused() {
        var lifecycle = SessionLifecycle()
        #expect(lifecycle.admitsRestore(decidedAt: 7, lastChange: 7))
        #expect(!lifecycle.admitsRestore(decidedAt: 6, lastChange: 7), "the read predates a terminal stop")
        _ = lifecycle.started(on: "node-a", status: SessionStatus(tenant: Self.tenant, state: .stopped))
        #expect(!lifecycle.admitsRestore(decidedAt: 9, lastChange: 7), "a runner is already active")
    }

    @Test func pairingRecordsTheDesiredStateAndAQRNeverOverridesALinkCode() {
        var lifecycle = SessionLifecycle()
        let stopped = SessionStatus(tenant: Self.tenant, state: .stopped)
        _ = lifecycle.started(on: "node-a", status: stopped)
        let now = Date(timeIntervalSince1970: 1_700_000_000)
        let qr = lifecycle.clientEvent(.qrCode("2@ref", expiresIn: .seconds(60)), status: stopped, now: now)
        #expect(qr == [.publish(Self.with(stopped) { $0.state = .pairing; $0.qr = "2@ref"; $0.qrExpiresAt = now + 60; $0.pairingMethod = .qr })])
        let coding = Self.with(stopped) { $0.state = .pairing; $0.pairingMethod = .code }
        #expect(lifecycle.clientEvent(.qrCode("2@ref", expiresIn: .seconds(20)), status: coding, now: now).isEmpty)
        let paired = lifecycle.clientEvent(.paired(jid: "j"), status: coding, now: now)
        #expect(paired.contains(.recordDesired(.running)) && paired.contains(.countPairing(.succeeded)))
    }
}
