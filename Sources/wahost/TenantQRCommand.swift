import App
import ArgumentParser
import Foundation

extension TenantCommand {
    struct QR: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "qr",
            abstract: "Show a tenant's pairing QR code in the terminal (asks the running server, which starts pairing if idle).")

        @Argument(help: "Tenant name.") var name: String
        @OptionGroup var running: RunningServerOptions
        @Option(help: "A one-time code, for tenants with MFA.") var otp: String?

        func run() async throws {
            let tenant = try TenantCommand.tenantName(name)
            let server = try running.server()
            let object = try await server.call("GET", "/tenants/\(tenant)/session/qr", headers: otp.map { ["x-otp": $0] } ?? [:], expected: 200)
            guard let qr = object["qr"] as? String else { throw fail("the server answered without a QR code", code: 1) }
            guard let rendered = TerminalQR.render(qr) else { throw fail("cannot render the QR code", code: 1) }
            print(rendered)
            print("Scan with WhatsApp → Settings → Linked devices → Link a device. Expires in \(object["expires_in"] as? Int ?? 0) s;")
            print("run this command again for the next code.")
        }
    }
}
