import Foundation
import Logging
import NIOSSL
import TestSupport
import Testing
import WhatsApp
import WhatsAppSimulator

/// Where a server hangs on a connection's way in (issue 19, hostile network).
enum ConnectStall: String, CaseIterable, Sendable {
    /// TCP accepted, the upgrade request never answered (`ws://`).
    case upgradeOverTCP
    /// TCP and TLS done, the upgrade request never answered (`wss://`).
    case upgradeOverTLS
    /// TCP accepted, the TLS handshake never answered (`wss://`).
    case tlsHandshake

    var secure: Bool { self != .upgradeOverTCP }
    var stalledStep: String { self == .tlsHandshake ? "TLS handshake" : "websocket upgrade" }
}

/// Every step before the first WhatsApp frame is bounded: a server that accepts the connection and then says nothing
/// ends the attempt at the client's own deadline, the client closes the socket, and the next attempt to a server that
/// answers logs in.
@Suite(.serialized) struct ConnectStallTests {
    private static let upgradeTimeout: Duration = .seconds(17)

    /// A client of the rig's account (same credentials) with manual timers and `upgradeTimeout`, connecting to `url`.
    private func client(of rig: Rig, url: String, trusting certificate: String?, timers: ManualTimers) throws -> WhatsAppClient {
        var configuration = rig.configuration
        configuration.url = url
        configuration.upgradeTimeout = Self.upgradeTimeout
        configuration.timers = timers.clientTimers
        if let certificate { configuration.tlsConfiguration = try WhatsAppTLS.trusting(pemFile: certificate) }
        var logger = Logger(label: "test.client")
        logger.logLevel = .warning
        return WhatsAppClient(configuration: configuration, store: rig.store, logger: logger)
    }

    @Test(arguments: ConnectStall.allCases)
    func aStalledStepEndsAtTheUpgradeTimeoutClosesTheSocketAndTheRealServerOnTheSamePortThenLogsIn(stall: ConnectStall) async throws {
        let rig = try await Rig.make()
        let (paired, user, session) = try await rig.pairedClient()
        await paired.disconnect()
        #expect(try await outcome(of: session) == .requested)
        await rig.simulator.stop()

        let (certificate, key) = try makeLocalhostCertificate()
        let serverTLS = try WhatsAppSimulator.serverTLS(certificateFile: certificate, keyFile: key)
        let listener = try await SilentListener.start(tls: stall == .upgradeOverTLS ? serverTLS : nil)
        let url = stall.secure ? "wss://localhost:\(listener.port)/ws/chat" : "ws://127.0.0.1:\(listener.port)/ws/chat"
        let timers = ManualTimers()
        let client = try client(of: rig, url: url, trusting: stall.secure ? certificate : nil, timers: timers)

        let stalled = Task { await client.run() }
        try await eventually { timers.armed.contains(Self.upgradeTimeout) }
        if stall == .tlsHandshake {
            try await eventually { listener.observed.bytesReceived > 0 }  // the TLS ClientHello, never answered
        } else {
            try await eventually { listener.observed.upgradeRequests == 1 }
        }
        #expect(timers.fire(delay: Self.upgradeTimeout) == 1)
        let reason = try await outcome(of: stalled)
        #expect(reason == .networkError("\(stall.stalledStep) timed out after 17 s"))
        #expect(reason.disposition == .reconnectWithBackoff)
        try await eventually { listener.observed.closedByClient == 1 }
        #expect(listener.observed.open == 0)
        #expect(listener.observed.accepted == 1)

        await listener.stop()
        if stall.secure {
            _ = try await rig.simulator.start()
            _ = try await rig.simulator.startTLS(serverTLS, port: listener.port)
        } else {
            _ = try await rig.simulator.start(port: listener.port)
        }
        try await expectSecondLoginThenStop(client, rig, user: user)
        await rig.simulator.stop()
    }

    /// `disconnect()` on the client (an API caller), or a cancelled task (the pool's stop, restart or shutdown).
    @Test(arguments: ["disconnect", "cancel"])
    func aStopWhileTheUpgradeGoesUnansweredEndsTheAttemptAndClosesTheSocket(by stop: String) async throws {
        let rig = try await Rig.make()
        let listener = try await SilentListener.start()
        let timers = ManualTimers()
        let client = try client(of: rig, url: "ws://127.0.0.1:\(listener.port)/ws/chat", trusting: nil, timers: timers)
        let stalled = Task { await client.run() }
        try await eventually { listener.observed.upgradeRequests == 1 }
        if stop == "disconnect" { await client.disconnect() } else { stalled.cancel() }
        let reason = try await outcome(of: stalled)
        #expect(stop == "cancel" || reason == .requested, "\(reason)")
        try await eventually { listener.observed.closedByClient == 1 }
        #expect(timers.armed.isEmpty, "the upgrade deadline is cancelled with the attempt")
        await listener.stop()
        await rig.simulator.stop()
    }

    /// `disconnect()` after the upgrade and before the login's answer (no connection state yet): the connection ends
    /// at once as requested and the client closes the socket, instead of living on once the answer comes (or waiting
    /// for the handshake deadline when none does).
    @Test func aDisconnectDuringTheHandshakeEndsTheConnectionAtOnceAndClosesTheSocket() async throws {
        let rig = try await Rig.make()
        let timers = ManualTimers()
        var configuration = rig.configuration
        configuration.handshakeTimeout = .seconds(13)
        configuration.timers = timers.clientTimers
        let client = WhatsAppClient(configuration: configuration, store: rig.store, logger: Logger(label: "test.client"))

        await rig.simulator.armConnectFault(.helloUnanswered)
        let stalled = Task { await client.run() }
        try await eventually { await rig.simulator.observed.connectFaultsOpen == 1 }
        try await eventually { timers.armed == [.seconds(13)] }
        await client.disconnect()
        #expect(try await outcome(of: stalled) == .requested)
        try await eventually { await rig.simulator.observed.connectFaultsClosedByClient == 1 }
        #expect(timers.armed.isEmpty, "the handshake deadline is cancelled with the connection")
        await rig.simulator.stop()
    }

    /// `disconnect()` while the client still loads its credentials (a slow database): the run ends as requested
    /// without connecting (it went on to connect and log in, and the disconnect was lost).
    @Test func aDisconnectWhileTheCredentialsLoadEndsTheRunBeforeItConnects() async throws {
        let rig = try await Rig.make()
        let (paired, user, session) = try await rig.pairedClient()
        await paired.disconnect()
        #expect(try await outcome(of: session) == .requested)
        let gate = Gate()
        await gate.close()
        let client = WhatsAppClient(configuration: rig.configuration, store: LoadGate(base: rig.store, gate: gate), logger: Logger(label: "test.client"))
        let run = Task { await client.run() }
        try await eventually { await gate.waitingCount == 1 }
        await client.disconnect()
        await gate.open()
        #expect(try await outcome(of: run) == .requested)
        #expect(await rig.simulator.observed.logins[user] == 1, "no second login")
        await rig.simulator.stop()
    }

    @Test(arguments: SimulatedConnectFault.allCases)
    func aConnectFaultOfTheSimulatorEndsAtItsDeadlineAndTheNextConnectionLogsIn(fault: SimulatedConnectFault) async throws {
        let rig = try await Rig.make()
        let (paired, user, session) = try await rig.pairedClient()
        await paired.disconnect()
        #expect(try await outcome(of: session) == .requested)
        let timers = ManualTimers()
        var configuration = rig.configuration
        configuration.upgradeTimeout = Self.upgradeTimeout
        configuration.handshakeTimeout = .seconds(13)
        configuration.timers = timers.clientTimers
        let client = WhatsAppClient(configuration: configuration, store: rig.store, logger: Logger(label: "test.client"))

        await rig.simulator.armConnectFault(fault)
        let stalled = Task { await client.run() }
        let deadline = fault == .upgradeUnanswered ? Self.upgradeTimeout : .seconds(13)
        try await eventually { await rig.simulator.observed.connectFaultsOpen == 1 }
        try await eventually { timers.armed.contains(deadline) }
        #expect(timers.fire(delay: deadline) == 1)
        let reason = try await outcome(of: stalled)
        #expect(reason.disposition == .reconnectWithBackoff, "\(reason)")
        if fault == .upgradeUnanswered {
            #expect(reason == .networkError("websocket upgrade timed out after 17 s"))
        } else {
            guard case .handshakeFailed = reason else { throw TestSupportError("expected a handshake timeout, got \(reason)") }
        }
        try await eventually { await rig.simulator.observed.connectFaultsClosedByClient == 1 }
        #expect(await rig.simulator.observed.connectFaultsOpen == 0)
        #expect(await rig.simulator.observed.connectFaultsMet[fault.rawValue] == 1)

        try await expectSecondLoginThenStop(client, rig, user: user)
        await rig.simulator.stop()
    }
}

/// A credential store whose loads of the credentials wait at a gate (a slow database).
struct LoadGate: CredentialStore {
    let base: any CredentialStore
    let gate: Gate

    func load() async throws -> DeviceCredentials? {
        await gate.pass()
        return try await base.load()
    }
    func save(_ credentials: DeviceCredentials) async throws { try await base.save(credentials) }
    func savePreKeys(_ preKeys: [PreKey]) async throws { try await base.savePreKeys(preKeys) }
    func loadPreKeys() async throws -> [PreKey] { try await base.loadPreKeys() }
    func removePreKeys(_ ids: Set<UInt32>) async throws { try await base.removePreKeys(ids) }
    func wipe() async throws { try await base.wipe() }
}
