import App
import ArgumentParser
import Foundation
import Tenancy

struct TenantCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tenant",
        abstract: "Manage tenants and their secrets.",
        subcommands: [Create.self, List.self, Change.self, RotateToken.self, ResetOTP.self, Delete.self, QR.self]
    )

    /// Validates a name from the command line; exit code 2 with the reason if it is not valid.
    static func tenantName(_ text: String) throws -> TenantName {
        do { return try TenantName(text) } catch { throw fail("invalid tenant name '\(text)': \(error)", code: 2) }
    }

    /// Maps a tenancy failure to a message and exit code 1.
    static func failure(_ error: any Error) -> ExitCode {
        fail("\(error)", code: 1)
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a tenant; prints its admin token and OTP secret once.")

        @OptionGroup var storage: StorageOptions
        @Argument(help: "Tenant name: 1-64 of a-z, 0-9 and '-'.") var name: String
        @Flag(name: .customLong("no-mfa"), help: "Do not require a TOTP code for session actions.") var noMFA = false
        @Option(name: .customLong("mfa-number"), help: "Where WhatsApp one-time codes go: digits, country code first (default: the tenant's own account).")
        var mfaNumber: String?

        struct Output: Encodable {
            let tenant: String
            let admin_token: String
            let otp_secret: String?
            let otpauth_uri: String?
        }

        func run() async throws {
            let name = try TenantCommand.tenantName(name)
            try await withServices(storage) { services in
                let issued: IssuedTenant
                do { issued = try await services.tenants.createTenant(name, mfa: !noMFA, mfaNumber: mfaNumber, actor: "cli") } catch {
                    throw TenantCommand.failure(error)
                }
                try printJSON(
                    Output(
                        tenant: name.rawValue, admin_token: issued.adminToken.text, otp_secret: issued.otp?.secretBase32,
                        otpauth_uri: issued.otp?.provisioningURI))
                if isatty(STDOUT_FILENO) == 1, let uri = issued.otp?.provisioningURI, let qr = TerminalQR.render(uri) {
                    print(qr)
                }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List tenants as a JSON array.")

        @OptionGroup var storage: StorageOptions

        struct Entry: Encodable {
            let tenant: String
            let created_at: String
            let mfa: Bool
            let mfa_number: String?
        }

        func run() async throws {
            try await withServices(storage) { services in
                let tenants: [Tenant]
                do { tenants = try await services.tenants.listTenants() } catch { throw TenantCommand.failure(error) }
                let formatter = ISO8601DateFormatter()
                try printJSON(
                    tenants.map {
                        Entry(
                            tenant: $0.name.rawValue, created_at: formatter.string(from: $0.createdAt), mfa: $0.mfaEnabled,
                            mfa_number: $0.mfaNumber)
                    })
            }
        }
    }

    struct Change: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set", abstract: "Change a tenant's settings: where its WhatsApp one-time codes go.")

        @OptionGroup var storage: StorageOptions
        @Argument var name: String
        @Option(name: .customLong("mfa-number"), help: "Digits, country code first; an empty string sends codes to the tenant's own account.")
        var mfaNumber: String

        struct Output: Encodable {
            let tenant: String
            let mfa_number: String?
        }

        func run() async throws {
            let name = try TenantCommand.tenantName(name)
            try await withServices(storage) { services in
                do {
                    let stored = try await services.tenants.setMFANumber(mfaNumber, for: name, actor: "cli")
                    try printJSON(Output(tenant: name.rawValue, mfa_number: stored))
                } catch {
                    throw TenantCommand.failure(error)
                }
            }
        }
    }

    struct RotateToken: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate-token", abstract: "Issue a new admin token; the old one stops working at once.")

        @OptionGroup var storage: StorageOptions
        @Argument var name: String

        struct Output: Encodable {
            let tenant: String
            let admin_token: String
        }

        func run() async throws {
            let name = try TenantCommand.tenantName(name)
            try await withServices(storage) { services in
                do {
                    let token = try await services.tenants.rotateAdminToken(for: name, actor: "cli")
                    try printJSON(Output(tenant: name.rawValue, admin_token: token.text))
                } catch {
                    throw TenantCommand.failure(error)
                }
            }
        }
    }

    struct ResetOTP: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "reset-otp", abstract: "Issue a new TOTP secret (enables MFA); old codes stop working.")

        @OptionGroup var storage: StorageOptions
        @Argument var name: String

        struct Output: Encodable {
            let tenant: String
            let otp_secret: String
            let otpauth_uri: String
        }

        func run() async throws {
            let name = try TenantCommand.tenantName(name)
            try await withServices(storage) { services in
                do {
                    let enrolment = try await services.tenants.resetOTP(for: name, actor: "cli")
                    try printJSON(Output(tenant: name.rawValue, otp_secret: enrolment.secretBase32, otpauth_uri: enrolment.provisioningURI))
                    if isatty(STDOUT_FILENO) == 1, let qr = TerminalQR.render(enrolment.provisioningURI) { print(qr) }
                } catch {
                    throw TenantCommand.failure(error)
                }
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a tenant, its secrets and its credential files.")

        @OptionGroup var storage: StorageOptions
        @Argument var name: String

        func run() async throws {
            let name = try TenantCommand.tenantName(name)
            try await withServices(storage) { services in
                do { try await services.deleteTenant(name, actor: "cli") } catch { throw TenantCommand.failure(error) }
                try printJSON(["tenant": name.rawValue, "status": "deleted"])
            }
        }
    }
}
