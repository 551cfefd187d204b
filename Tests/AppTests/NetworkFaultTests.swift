import Foundation
import Tenancy
import TestSupport
import Testing
import WhatsAppSimulator

/// `serve` under the simulator's wire faults, with its timers accelerated from outside (issue 19).
@Suite(.serialized) struct NetworkFaultTests {
    @Test func timeScaleIsCheckedAtStartup() async throws {
        let directory = try makeTemporaryDirectory()
        for text in ["fast", "0", "0.5", "1001", "nan", "inf", ""] {
            let environment = ["WAHOST_MASTER_KEY": MasterKey.generate().base64, "WAHOST_TIME_SCALE": text]
            let result = try await WahostBinary.runDetached(["serve", "--data-dir", directory, "--port", "0"], environment: environment)
            #expect(result.status == 2 && result.stderr.contains("WAHOST_TIME_SCALE must be a number from 1 to 1000"), "'\(text)': \(result.stderr)")
        }
    }

    @Test func withAcceleratedTimersAStalledConnectionIsLeftAndTheSessionLogsInAgain() async throws {
        let rig = try await APIRig()
        defer { Task { await rig.stopAll() } }
        // Keepalive every 1-1.5 s, 0.5 s to answer; by default the stall would hold the session for 30-40 s.
        rig.extraEnvironment["WAHOST_TIME_SCALE"] = "20"
        let (token, _) = try await rig.createTenant("stalled")
        let (_, port) = try await rig.startServer()
        let user = try await pairByQR(rig, port: port, tenant: "stalled", token: token)
        try await eventually("pings on the accelerated keepalive") { await (rig.simulator.observed.pings[user] ?? 0) >= 2 }

        for fault in [SimulatedWireFault.stallMidFrame, .silent, .overlongFrame, .garbageFrame] {
            // The accelerated keepalive gives a ping 0.5 s: under load a connection can end by itself, so the fault
            // goes to the live connection whenever there is one (and the logins are counted from then).
            var logins = 0
            try await eventually("\(fault) applied to a live connection") {
                logins = await rig.simulator.observed.logins[user] ?? 0
                return await rig.simulator.applyWireFault(fault, toAccount: user) == 1
            }
            try await eventually(timeout: .seconds(20), "logged in again after \(fault)") {
                let observed = await rig.simulator.observed
                return (observed.logins[user] ?? 0) > logins && observed.liveConnections[user] == 1
            }
            try await eventually("\(fault): connected") { try await isConnected(port, "stalled") }
        }
        #expect(await rig.simulator.observed.peakConnectionsPerAccount[user] == 1)
    }
}
