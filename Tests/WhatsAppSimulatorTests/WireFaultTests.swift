import Synchronization
import TestSupport
import WahostBasics
import Testing
import WhatsApp
import WhatsAppSimulator

/// The task's reason, or an error when it has not ended within `timeout` (a hung connection fails the test, not the run:
/// a task group racing a timer would wait for the child still awaiting the hung task).
func outcome(of task: Task<DisconnectReason, Never>, within timeout: Duration = .seconds(20)) async throws -> DisconnectReason {
    try await Deadline.run(within: timeout, { await task.value }, timeout: { TestSupportError("the connection did not end within \($0)") })
}

/// The client's next run is the account's second login and its only live connection; a disconnect ends it.
func expectSecondLoginThenStop(_ client: WhatsAppClient, _ rig: Rig, user: String) async throws {
    let next = Task { await client.run() }
    try await eventually { await rig.simulator.observed.logins[user] == 2 }
    #expect(await rig.simulator.observed.liveConnections[user] == 1)
    await client.disconnect()
    #expect(try await outcome(of: next) == .requested)
}

/// Network faults on the wire (issue 19): each ends the connection by a bound the client sets itself, with a reason
/// that reconnects, and the next connection logs in.
@Suite(.serialized) struct WireFaultTests {
    @Test func aFrameStalledHalfwayByAPeerThatStopsReadingEndsAtTheKeepaliveAndTheCloseTimeout() async throws {
        let timers = ManualTimers()
        let rig = try await Rig.make(
            keepaliveInterval: .seconds(25) ... .seconds(25), keepaliveDeadline: .seconds(7), closeTimeout: .seconds(3), timers: timers.clientTimers)
        let (client, user, session) = try await rig.pairedClient()
        #expect(await rig.simulator.applyWireFault(.stallMidFrame, toAccount: user) == 1)
        try await eventually { timers.armed.contains(.seconds(25)) }
        timers.fire(delay: .seconds(25))  // the ping goes out; the peer reads nothing more and sends nothing
        try await eventually { timers.armed.contains(.seconds(7)) }
        timers.fire(delay: .seconds(7))  // keepalive timeout: the client closes, and the close is never answered
        try await eventually { timers.armed.contains(.seconds(3)) }
        timers.fire(delay: .seconds(3))
        #expect(try await outcome(of: session) == .keepaliveTimeout)

        try await expectSecondLoginThenStop(client, rig, user: user)
        await rig.simulator.stop()
    }

    @Test func aLoginLeftUnansweredAfterTheHandshakeEndsAtTheHandshakeTimeout() async throws {
        let timers = ManualTimers()
        let rig = try await Rig.make(handshakeTimeout: .seconds(13), timers: timers.clientTimers)
        let (client, user, session) = try await rig.pairedClient()
        await rig.simulator.stallNextLogin(of: user)
        await rig.simulator.dropConnections(ofAccount: user)
        #expect(try await outcome(of: session).disposition == .reconnectWithBackoff)

        let stalled = Task { await client.run() }
        try await eventually { await rig.simulator.observed.unansweredLogins == 1 }
        #expect(timers.fire(delay: .seconds(13)) == 1)
        let reason = try await outcome(of: stalled)
        #expect(reason.disposition == .reconnectWithBackoff, "\(reason)")
        guard case .handshakeFailed = reason else { throw TestSupportError("expected a handshake timeout, got \(reason)") }

        try await expectSecondLoginThenStop(client, rig, user: user)
        await rig.simulator.stop()
    }

    @Test(arguments: [SimulatedWireFault.silent, .slowAnswers(.seconds(120)), .overlongFrame])
    func aConnectionWhosePingGoesUnansweredEndsAtTheKeepaliveDeadline(fault: SimulatedWireFault) async throws {
        let timers = ManualTimers()
        let rig = try await Rig.make(keepaliveInterval: .seconds(25) ... .seconds(25), keepaliveDeadline: .seconds(7), timers: timers.clientTimers)
        let (_, user, session) = try await rig.pairedClient()
        #expect(await rig.simulator.applyWireFault(fault, toAccount: user) == 1)
        try await eventually { timers.armed.contains(.seconds(25)) }
        timers.fire(delay: .seconds(25))
        try await eventually { timers.armed.contains(.seconds(7)) }
        timers.fire(delay: .seconds(7))
        #expect(try await outcome(of: session) == .keepaliveTimeout)
        // The chaos bench's login bound: a slowed connection the client ended is counted, with its delay.
        try await eventually { await rig.simulator.observed.liveConnections[user] == 0 }
        let slowEnds = await rig.simulator.observed.slowConnectionsClosedByClient[user]
        #expect(slowEnds == (fault == .slowAnswers(.seconds(120)) ? [120] : nil))
        await rig.simulator.stop()
    }

    @Test(arguments: ["garbage", "drop"])
    func aSlowedConnectionEndedByAnotherFaultIsNotCountedAsClosedBecauseSlow(other: String) async throws {
        let rig = try await Rig.make()
        let (_, user, session) = try await rig.pairedClient()
        #expect(await rig.simulator.applyWireFault(.slowAnswers(.milliseconds(100)), toAccount: user) == 1)
        if other == "garbage" {
            #expect(await rig.simulator.applyWireFault(.garbageFrame, toAccount: user) == 1)
        } else {
            #expect(await rig.simulator.dropConnections(ofAccount: user) == 1)
        }
        _ = try await outcome(of: session)
        try await eventually { await rig.simulator.observed.liveConnections[user] == 0 }
        #expect(await rig.simulator.observed.slowConnectionsClosedByClient[user] == nil)
        await rig.simulator.stop()
    }

    @Test func outcomeGivesUpOnATaskThatDoesNotEndWithoutWaitingForIt() async throws {
        let ended = Mutex(false)
        let hung = Task { () -> DisconnectReason in
            try? await Task.sleep(for: .seconds(30))
            ended.withLock { $0 = true }
            return .requested
        }
        await #expect(throws: TestSupportError.self) { try await outcome(of: hung, within: .milliseconds(100)) }
        #expect(!ended.withLock { $0 }, "the task was not waited for")
        hung.cancel()
    }

    @Test func aGarbageFrameEndsTheConnectionAsANetworkErrorAndTheNextOneLogsIn() async throws {
        let rig = try await Rig.make()
        let (client, user, session) = try await rig.pairedClient()
        #expect(await rig.simulator.applyWireFault(.garbageFrame, toAccount: user) == 1)
        let reason = try await outcome(of: session)
        guard case .networkError = reason else { throw TestSupportError("expected a decode failure, got \(reason)") }

        try await expectSecondLoginThenStop(client, rig, user: user)
        await rig.simulator.stop()
    }
}
