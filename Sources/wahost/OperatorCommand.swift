import App
import ArgumentParser
import Foundation
import Tenancy

struct OperatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "operator", abstract: "Manage the operator token.", subcommands: [RotateToken.self])

    struct RotateToken: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate-token", abstract: "Issue a new operator token; the old one stops working at once.")

        @OptionGroup var storage: StorageOptions

        struct Output: Encodable {
            let operator_token: String
        }

        func run() async throws {
            try await withServices(storage) { services in
                do {
                    let token = try await services.tenants.issueOperatorToken(actor: "cli")
                    try printJSON(Output(operator_token: token.text))
                } catch {
                    throw TenantCommand.failure(error)
                }
            }
        }
    }
}
