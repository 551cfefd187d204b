import App
import ArgumentParser
import Foundation

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

extension TenantCommand {
    struct QR: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "qr",
            abstract: "Show a tenant's pairing QR code in the terminal (asks the running server, which starts pairing if idle).")

        @Argument(help: "Tenant name.") var name: String
        @Option(help: "The running server.") var url = "http://127.0.0.1:8080"
        @Option(help: "The tenant's admin token (env WAHOST_ADMIN_TOKEN).") var token: String?
        @Option(help: "A one-time code, for tenants with MFA.") var otp: String?

        func run() async throws {
            let tenant = try TenantCommand.tenantName(name)
            guard let token = token ?? ProcessInfo.processInfo.environment["WAHOST_ADMIN_TOKEN"], !token.isEmpty else {
                throw fail("an admin token is required (--token or WAHOST_ADMIN_TOKEN)", code: 2)
            }
            guard let endpoint = URL(string: url.trimmingCharacters(in: CharacterSet(charactersIn: "/")) + "/tenants/\(tenant)/session/qr") else {
                throw fail("invalid --url", code: 2)
            }
            var request = URLRequest(url: endpoint)
            request.timeoutInterval = 30
            request.setValue(token, forHTTPHeaderField: "x-admin-token")
            if let otp { request.setValue(otp, forHTTPHeaderField: "x-otp") }
            let data: Data
            let response: URLResponse
            do { (data, response) = try await URLSession.shared.data(for: request) } catch {
                throw fail("cannot reach \(url): \(error.localizedDescription)", code: 1)
            }
            let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
            guard (response as? HTTPURLResponse)?.statusCode == 200, let qr = object["qr"] as? String else {
                let message = ((object["error"] as? [String: Any])?["message"] as? String) ?? String(decoding: data, as: UTF8.self)
                throw fail("the server refused: \(message)", code: 1)
            }
            guard let rendered = TerminalQR.render(qr) else { throw fail("cannot render the QR code", code: 1) }
            print(rendered)
            print("Scan with WhatsApp → Settings → Linked devices → Link a device. Expires in \(object["expires_in"] as? Int ?? 0) s;")
            print("run this command again for the next code.")
        }
    }
}
