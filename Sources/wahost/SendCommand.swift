import ArgumentParser
import Foundation

/// `wahost send`: a text from a tenant's connected account, through the running server's API.
struct SendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send", abstract: "Send a text message from a tenant's account (asks the running server).")

    @Argument(help: "Tenant name.") var tenant: String
    @Option(help: "A phone number (digits) or a JID: …@s.whatsapp.net, …@lid, …@g.us.") var to: String
    @Option(help: "The text to send.") var text: String
    @OptionGroup var running: RunningServerOptions
    @Option(help: "An idempotency key: a repeat with the same key sends nothing again.") var idempotencyKey: String?

    func run() async throws {
        let name = try TenantCommand.tenantName(tenant)
        let server = try running.server()
        let object = try await server.call(
            "POST", "/tenants/\(name)/messages", headers: idempotencyKey.map { ["idempotency-key": $0] } ?? [:], body: ["to": to, "text": text],
            expected: 201)
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }
}
