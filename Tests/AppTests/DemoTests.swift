import Foundation
import TestSupport
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

@Suite(.serialized) struct DemoTests {
    /// `wahost demo` pairs through its own simulator from the dashboard; `serve` has neither the banner nor the control.
    @Test func demoModeIsUnmistakableAndServeCannotScan() async throws {
        let dataDirectory = try makeTemporaryDirectory()
        let port = try freePort()
        let demo = try ServerProcess.start(arguments: ["demo", "--port", "\(port)", "--data-dir", dataDirectory])
        defer { demo.signalStop() }
        try await demo.waitForHealth(port: port)
        let signIn = try await http("GET", port, "/dashboard/")
        #expect(signIn.text.contains("DEMO MODE"))
        let token = try #require(demo.output.split(separator: "\n").first { $0.contains("admin token:") }?.split(separator: " ").last)

        // Sign in as the demo tenant, start pairing and let the simulated phone scan: the session connects.
        let session = URLSession(configuration: .ephemeral)
        func post(_ path: String, _ form: String) async throws -> (Int, String) {
            var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
            request.httpMethod = "POST"
            request.httpBody = Data(form.utf8)
            request.setValue("application/x-www-form-urlencoded", forHTTPHeaderField: "content-type")
            let (data, response) = try await session.data(for: request)
            return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
        }
        let (_, page) = try await post("/dashboard/sign-in", "kind=tenant&tenant=demo&token=\(token)")
        #expect(page.contains("Show a QR code"), "\(page.prefix(2000))")
        let csrf = try #require(page.range(of: #"name="csrf" value="([^"]+)""#, options: .regularExpression).map { String(page[$0]) })
            .replacingOccurrences(of: #"name="csrf" value=""#, with: "").dropLast()
        _ = try await post("/dashboard/pairing/start", "csrf=\(csrf)&tenant=demo")
        let (status, _) = try await post("/dashboard/demo/scan", "csrf=\(csrf)&tenant=demo")
        #expect(status == 200 || status == 303)
        try await eventually("demo tenant connected") { try await isConnected(port, "demo") }
        await demo.stop()

        // serve on another data directory: no banner, and the demo control does not exist.
        let servePort = try freePort()
        let serve = try ServerProcess.start(arguments: ["serve", "--port", "\(servePort)", "--data-dir", try makeTemporaryDirectory()])
        defer { serve.signalStop() }
        try await serve.waitForHealth(port: servePort)
        #expect(try await http("GET", servePort, "/dashboard/").text.contains("DEMO MODE") == false)
        #expect(try await http("POST", servePort, "/dashboard/demo/scan").status == 403, "no session, no CSRF: refused before anything else")
    }
}
