import Foundation
import TestSupport
import WahostBasics

/// `chaos --pairing-kills N`: `kill -9` of `serve` while a new tenant pairs (the pairing's credential writes, the
/// first login, the prekey upload). After the restart the tenant must be either paired (it logs in with no new
/// pairing) or not paired at all (a new QR code pairs it); never stuck, never half-paired, never unable to pair again.
extension Chaos {
    /// What the pairing kills came to.
    struct PairingKillReport {
        var kills = 0
        /// Kills after which the tenant logged in on its own: the credentials were stored whole.
        var keptPairing = 0
        /// Kills before the credentials were stored, or before the phone heard the companion's answer (WhatsApp then
        /// refuses the login, 401: logged out): the tenant paired again from a new QR code.
        var pairedAgain = 0
        var broken: [String] = []
    }

    /// Latest moment of a kill after the phone scanned the QR code, in seconds (pair-success, login, prekey upload).
    static let pairingKillWindow = 1.5

    /// Pairs one new tenant per cycle and kills `serve` at a random moment of the pairing; checks, then logs it out.
    func runPairingKills(
        _ rig: BenchRig, server: inout (process: ChildProcess, port: Int), environment: [String: String], dataDirectory: String?,
        generator: inout SeededGenerator
    ) async throws -> PairingKillReport {
        var report = PairingKillReport()
        for cycle in 0..<pairingKills {
            let name = "pairing-\(cycle)"
            let created = await callNode("POST", port: server.port, "/tenants", headers: ["x-admin-token": rig.operatorToken], body: ["name": name, "mfa": false])
            guard created.status == 201, let token = created.object["admin_token"] as? String else {
                report.broken.append("creating \(name): \(created.summary)")
                continue
            }
            let auth = ["x-admin-token": token]
            let qr = await callNode("GET", port: server.port, "/tenants/\(name)/session/qr", headers: auth)
            guard qr.status == 200, let code = qr.object["qr"] as? String else {
                report.broken.append("QR code of \(name): \(qr.summary)")
                continue
            }
            let control = rig.control
            // The linked JID, or nil when the phone could not link (the companion died first).
            let scan = Task { () async -> String? in
                guard let (status, body) = try? await request("POST", control + "/scan", body: ["qr": code]), status == 200 else { return nil }
                return body["jid"] as? String
            }
            // Half the kills within 0.12 s of the scan (pair-success, the credential writes), half anywhere in the window.
            let window = cycle % 2 == 0 ? 0.12 : Self.pairingKillWindow
            let delay = Double.random(in: 0...window, using: &generator)
            try await Task.sleep(for: .milliseconds(Int64(delay * 1000)))
            kill(server.process.pid, SIGKILL)
            await server.process.process.exited()
            report.kills += 1
            // A scan the kill cut short links nothing the companion kept; the phone may still have linked the device.
            let linked = await scan.value
            server = try await rig.startServer(extraEnvironment: environment, dataDirectory: dataDirectory)
            let outcome = try await pairingOutcome(name, auth: auth, port: server.port)
            let line = String(format: "chaos: pairing kill %d at %.2f s after the scan: ", cycle, delay) + "linked \(linked ?? "nothing"), then \(outcome)\n"
            FileHandle.standardError.write(Data(line.utf8))
            switch outcome {
            case .connected(let me):
                if let linked, !me.hasPrefix(String(linked.prefix { $0 != ":" })) {
                    report.broken.append("\(name) logged in as \(me), but the phone linked \(linked)")
                }
                report.keptPairing += 1
            case .unpaired, .loggedOut:
                // Logged out: the credentials were stored but the kill came before the phone heard the companion's
                // answer, so WhatsApp never registered the device and refused its login (401); pairing again is due.
                if let failure = try await pairAgain(name, auth: auth, port: server.port, rig: rig) {
                    report.broken.append(failure)
                } else {
                    report.pairedAgain += 1
                }
            case .stuck(let status):
                report.broken.append("cycle \(cycle): \(name) after a kill during its pairing: \(status)")
            }
            let logout = await callNode("POST", port: server.port, "/tenants/\(name)/session/logout", headers: auth)
            if logout.status != 200 { report.broken.append("logout of \(name): \(logout.summary)") }
        }
        return report
    }

    enum PairingOutcome {
        case connected(me: String)
        case unpaired
        case loggedOut(String)
        case stuck(String)
    }

    /// Where a tenant whose pairing a kill interrupted ends within 30 s of the restart.
    private func pairingOutcome(_ name: String, auth: [String: String], port: Int) async throws -> PairingOutcome {
        let start = ContinuousClock.now
        var last = ""
        while ContinuousClock.now < start + .seconds(30) {
            let status = await callNode("GET", port: port, "/tenants/\(name)/session/status", headers: auth)
            let state = status.object["state"] as? String
            last = "\(status.summary) \(status.object)"
            if status.status == 200, status.object["connected"] as? Bool == true, let me = status.object["me"] as? String { return .connected(me: me) }
            // Nothing stored to restore: the restore has had its chance once `serve` is ready and a few seconds passed.
            if status.status == 200, state == "stopped", status.object["logged_in"] as? Bool != true, ContinuousClock.now > start + .seconds(3) {
                return .unpaired
            }
            if status.status == 200, state == "logged_out" { return .loggedOut(status.object["last_error"] as? String ?? "") }
            try await Task.sleep(for: .milliseconds(200))
        }
        return .stuck(last)
    }

    /// Pairs the tenant from a new QR code; nil when it logged in, else what went wrong.
    private func pairAgain(_ name: String, auth: [String: String], port: Int, rig: BenchRig) async throws -> String? {
        let qr = await callNode("GET", port: port, "/tenants/\(name)/session/qr", headers: auth)
        guard qr.status == 200, let code = qr.object["qr"] as? String else { return "\(name) cannot show a new QR code after the kill: \(qr.summary)" }
        let (scanned, linked) = try await request("POST", rig.control + "/scan", body: ["qr": code])
        guard scanned == 200 else { return "the phone could not scan \(name)'s new QR code: \(linked)" }
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            let status = await callNode("GET", port: port, "/tenants/\(name)/session/status", headers: auth)
            if status.object["connected"] as? Bool == true { return nil }
            try await Task.sleep(for: .milliseconds(200))
        }
        return "\(name) never connected after pairing again"
    }
}
