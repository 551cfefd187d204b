import Foundation
import Tenancy
import TestSupport
import Testing
import WhatsApp
import WhatsAppSimulator

@Suite(.serialized) struct DashboardBrowserTests {
    /// Headless Chromium drives the dashboard of a real `wahost serve` against the simulator: sign-in with token and
    /// OTP, the QR read back from the page's pixels by zbarimg equals the API's, the simulated phone scans it, the page
    /// turns connected without a reload and lists the groups, a forged cross-site POST is refused, logout needs the
    /// OTP, and the operator sees the tenant. See `browser/dashboard_flow.py`.
    @Test func signInPairWatchGroupsAndLogOutInABrowser() async throws {
        guard let python = ExternalTools.python else {
            if ExternalTools.required { Issue.record("WAHOST_TEST_PYTHON is not set; ./ops/test installs selenium") }
            return
        }
        let rig = try await APIRig()
        defer { Task { await rig.stopAll() } }
        let (token, secret) = try await rig.createTenant("acme", mfa: true)
        let otpSecret = try #require(secret)
        let operatorResult = try await WahostBinary.runDetached(["operator", "rotate-token", "--data-dir", rig.dataDirectory], environment: rig.environment)
        let operatorToken = try #require(try WahostBinary.json(operatorResult)["operator_token"] as? String)
        let set = try await WahostBinary.runDetached(
            ["tenant", "set", "acme", "--mfa-number", "15557770010", "--data-dir", rig.dataDirectory], environment: rig.environment)
        #expect(set.status == 0, "\(set.stderr)")
        let (_, port) = try await rig.startServer()

        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("browser/dashboard_flow.py").path
        let control = rig.url.replacingOccurrences(of: "ws://", with: "http://").replacingOccurrences(of: "/ws/chat", with: "/control")
        var environment = ProcessInfo.processInfo.environment
        environment["WAHOST_BASE_URL"] = "http://127.0.0.1:\(port)"
        environment["WAHOST_TENANT"] = "acme"
        environment["WAHOST_TOKEN"] = token
        environment["WAHOST_OTP_SECRET"] = Base32.encode(otpSecret)
        environment["WAHOST_OPERATOR_TOKEN"] = operatorToken
        environment["WAHOST_SIM_CONTROL"] = control
        environment["WAHOST_MFA_PEER"] = "15557770010"
        environment["WAHOST_FIXTURE_SUBJECTS"] = String(decoding: try JSONEncoder().encode(WhatsAppSimulator.groupFixture.map(\.subject)), as: UTF8.self)
        let result = try await runProcessDetached(python, [script], environment: environment)
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr.suffix(4000))")
        #expect(result.stdout.contains("all checks passed"))
    }
}
