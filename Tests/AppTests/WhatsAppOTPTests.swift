import Foundation
import TestSupport
import Testing
import WhatsAppSimulator

/// WhatsApp one-time codes through a real `wahost serve`: the code reaches the simulator peer that is the tenant's
/// `mfa_number` as a message it decrypts, and unlocks `x-otp` once.
@Suite(.serialized) struct WhatsAppOTPTests {
    /// The code in the newest text `peer` received that names `tenant`, and the device that sent it.
    func code(receivedBy peer: String, for tenant: String, _ rig: APIRig) async throws -> (code: String, from: String) {
        var found: (String, String)?
        try await eventually("a code for \(tenant) reaches \(peer)") {
            guard let message = await rig.simulator.received(byPeer: peer).last(where: { $0.text?.contains("tenant \(tenant).") == true }),
                let match = message.text?.firstMatch(of: /wahost: (\d{3}) (\d{3}) is your code/)
            else { return false }
            found = (String(match.1) + String(match.2), message.from)
            return true
        }
        return try #require(found)
    }

    func requestCode(_ port: Int, _ tenant: String, _ token: String) async throws -> HTTPResult {
        try await http("POST", port, "/tenants/\(tenant)/otp", headers: ["x-admin-token": token])
    }

    @Test func codesArriveOnWhatsAppAndUnlockOnce() async throws {
        let rig = try await APIRig()
        defer { Task { await rig.stopAll() } }
        rig.extraEnvironment["WAHOST_OTP_SENDER"] = "notifier"
        rig.extraEnvironment["WAHOST_LOCKOUT_MAX_FAILURES"] = "50"
        let (alpha, alphaSecret) = try await rig.createTenant("alpha", mfa: true)
        let (notifier, _) = try await rig.createTenant("notifier")
        let (gamma, _) = try await rig.createTenant("gamma", mfa: true)
        let (beta, _) = try await rig.createTenant("beta", mfa: true)
        let (eta, _) = try await rig.createTenant("eta", mfa: true)
        let (delta, _) = try await rig.createTenant("delta", mfa: true)
        for (tenant, number) in [("alpha", "15550001111"), ("beta", "15550003333"), ("eta", "+15550004444")] {
            let set = try await WahostBinary.runDetached(
                ["tenant", "set", tenant, "--mfa-number", number, "--data-dir", rig.dataDirectory], environment: rig.environment)
            #expect(set.status == 0, "\(set.stderr)")
        }
        let refused = try await WahostBinary.runDetached(
            ["tenant", "set", "delta", "--mfa-number", "12ab", "--data-dir", rig.dataDirectory], environment: rig.environment)
        #expect(refused.status != 0 && refused.stderr.contains("mfa_number"))
        let operatorResult = try await WahostBinary.runDetached(["operator", "rotate-token", "--data-dir", rig.dataDirectory], environment: rig.environment)
        let operatorToken = try #require(try WahostBinary.json(operatorResult)["operator_token"] as? String)
        let (server, port) = try await rig.startServer()

        // The operator API sets gamma's number.
        let patched = try await http(
            "PATCH", port, "/tenants/gamma", headers: ["x-admin-token": operatorToken], body: Data(#"{"mfa_number": "15550002222"}"#.utf8))
        #expect(patched.status == 200 && patched.object["mfa_number"] as? String == "15550002222", "\(patched.text)")
        let badPatch = try await http("PATCH", port, "/tenants/gamma", headers: ["x-admin-token": operatorToken], body: Data(#"{"mfa_number": 12}"#.utf8))
        #expect(badPatch.status == 400 && badPatch.errorCode == "invalid_mfa_number")

        // alpha is linked (its QR needs its authenticator's code); the notifier too.
        let qr = try await http("GET", port, "/tenants/alpha/session/qr", headers: ["x-admin-token": alpha, "x-otp": otp(try #require(alphaSecret))])
        let alphaJID = try await rig.simulator.scanQRCode(try #require(qr.object["qr"] as? String))
        let alphaAccount = String(alphaJID.prefix { $0 != ":" })
        try await eventually("alpha connected") { try await isConnected(port, "alpha") }
        let notifierAccount = try await pairByQR(rig, port: port, tenant: "notifier", token: notifier)

        // A connected tenant: its own session sends the code to its mfa_number; it unlocks logout once.
        var sent = try await requestCode(port, "alpha", alpha)
        #expect(sent.status == 202, "\(sent.text)")
        #expect(sent.object["sent_to"] as? String == "+1•••••••1111" && sent.object["expires_in"] as? Int == 300)
        let alphaCode = try await code(receivedBy: "15550001111", for: "alpha", rig)
        #expect(alphaCode.from.hasPrefix(alphaAccount + ":"), "sent by alpha's own session")
        let again = try await requestCode(port, "alpha", alpha)
        #expect(again.status == 429 && again.errorCode == "otp_rate_limited", "\(again.text)")
        #expect(((again.object["error"] as? [String: Any])?["retry_after"] as? Int).map { (1...30).contains($0) } == true)
        var logout = try await http("POST", port, "/tenants/alpha/session/logout", headers: ["x-admin-token": alpha, "x-otp": alphaCode.code])
        #expect(logout.status == 200, "\(logout.text)")
        logout = try await http("POST", port, "/tenants/alpha/session/logout", headers: ["x-admin-token": alpha, "x-otp": alphaCode.code])
        #expect(logout.status == 403 && logout.errorCode == "otp_invalid", "single use")

        // An unlinked tenant: the notifier's session sends it, and it unlocks the QR.
        sent = try await http("POST", port, "/session/otp", headers: ["x-admin-token": gamma])
        #expect(sent.status == 202 && sent.object["sent_to"] as? String == "+1•••••••2222", "\(sent.text)")
        let gammaCode = try await code(receivedBy: "15550002222", for: "gamma", rig)
        #expect(gammaCode.from.hasPrefix(notifierAccount + ":"), "sent by the notifier")
        let gammaQR = try await http("GET", port, "/tenants/gamma/session/qr", headers: ["x-admin-token": gamma, "x-otp": gammaCode.code])
        #expect(gammaQR.status == 200 && (gammaQR.object["qr"] as? String)?.isEmpty == false, "\(gammaQR.text)")

        // Five wrong codes void it.
        #expect(try await requestCode(port, "beta", beta).status == 202)
        let betaCode = try await code(receivedBy: "15550003333", for: "beta", rig).code
        let wrong = betaCode == "000000" ? "000001" : "000000"
        for _ in 1...5 {
            let attempt = try await http("GET", port, "/tenants/beta/session/qr", headers: ["x-admin-token": beta, "x-otp": wrong])
            #expect(attempt.status == 403 && attempt.errorCode == "otp_invalid")
        }
        let voided = try await http("GET", port, "/tenants/beta/session/qr", headers: ["x-admin-token": beta, "x-otp": betaCode])
        #expect(voided.status == 403 && voided.errorCode == "otp_invalid", "void after five wrong tries")

        // An expired code (its stored expiry moved into the past) is refused.
        #expect(try await requestCode(port, "eta", eta).status == 202)
        let etaCode = try await code(receivedBy: "15550004444", for: "eta", rig).code
        let database = rig.dataDirectory + "/system.db"
        _ = try await runProcessDetached("/usr/bin/sqlite3", [database, "UPDATE whatsapp_codes SET expires_at_ms = 1 WHERE tenant = 'eta';"])
        let expired = try await http("GET", port, "/tenants/eta/session/qr", headers: ["x-admin-token": eta, "x-otp": etaCode])
        #expect(expired.status == 403 && expired.errorCode == "otp_invalid")

        // No channel: not linked and no mfa_number for the notifier to send to. No MFA: nothing to send.
        let noChannel = try await requestCode(port, "delta", delta)
        #expect(noChannel.status == 409 && noChannel.errorCode == "otp_channel_unavailable", "\(noChannel.text)")
        let noMFA = try await requestCode(port, "notifier", notifier)
        #expect(noMFA.status == 409 && noMFA.errorCode == "mfa_not_enabled")

        // Without an mfa_number a linked tenant's code goes to its own account ("Message yourself").
        let (own, ownSecret) = try await rig.createTenant("own", mfa: true)
        let ownQR = try await http("GET", port, "/tenants/own/session/qr", headers: ["x-admin-token": own, "x-otp": otp(try #require(ownSecret))])
        let ownJID = try await rig.simulator.scanQRCode(try #require(ownQR.object["qr"] as? String))
        let ownNumber = String(ownJID.prefix { $0 != ":" })
        try await eventually("own connected") { try await isConnected(port, "own") }
        let toSelf = try await requestCode(port, "own", own)
        #expect(toSelf.status == 202 && toSelf.object["sent_to"] as? String == "+" + ownNumber.prefix(1) + "•••••••" + ownNumber.suffix(4), "\(toSelf.text)")

        // Audited, and the codes appear nowhere: not in the audit, the events, nor the server's log.
        let audit = try await runProcessDetached("/usr/bin/sqlite3", [database, "SELECT tenant || ' ' || action || ' ' || ifnull(detail, '') FROM audit_log;"]).stdout
        for row in [
            "alpha otp.whatsapp_sent", "alpha otp.whatsapp_used", "alpha otp.whatsapp_refused", "gamma otp.whatsapp_sent",
            "gamma otp.whatsapp_used", "beta otp.whatsapp_voided", "eta otp.whatsapp_expired", "delta otp.whatsapp_refused",
            "gamma tenant.mfa_number",
        ] {
            #expect(audit.contains(row), "\(row) in\n\(audit)")
        }
        #expect(audit.contains("alpha otp.whatsapp_sent to +1•••••••1111 via own session"))
        #expect(audit.contains("gamma otp.whatsapp_sent to +1•••••••2222 via notifier notifier"))
        let events = [
            try await http("GET", port, "/tenants/notifier/events?limit=1000", headers: ["x-admin-token": notifier, "accept": "application/json"]),
            try await http("GET", port, "/tenants/alpha/events?limit=1000", headers: ["x-admin-token": alpha, "accept": "application/json"]),
        ]
        #expect(events.allSatisfy { $0.status == 200 })
        // The log and the events are full of digits: look for the text that carries a code, and each code as sent.
        for text in [server.output] + events.map(\.text) { #expect(!text.contains("is your code")) }
        for secret in [alphaCode.code, gammaCode.code, betaCode, etaCode] {
            let spaced = String(secret.prefix(3)) + " " + String(secret.suffix(3))
            #expect(!audit.contains(secret) && !server.output.contains(spaced) && !events.contains { $0.text.contains(spaced) })
        }
    }
}
