import Foundation
import Hummingbird
import Logging
import SessionPool
import Tenancy
import WahostBasics

/// Who asked for a session action, as the audit log records it.
struct ActionCaller: Sendable {
    /// `tenant:<name>` or `operator`.
    let actor: String
    /// The client's address (after trusted proxies).
    let clientAddress: String
    /// Where the request came from when not the JSON API (`dashboard`); nil for the API.
    let channel: String?
    /// The request's logger.
    let logger: Logger

    /// A caller of the JSON API.
    static func api(_ actor: String, _ context: AdminRequestContext) -> ActionCaller {
        ActionCaller(actor: actor, clientAddress: context.clientAddress, channel: nil, logger: context.logger)
    }

    /// A caller signed in to the dashboard.
    static func dashboard(_ actor: String, _ context: AdminRequestContext) -> ActionCaller {
        ActionCaller(actor: actor, clientAddress: context.clientAddress, channel: "dashboard", logger: context.logger)
    }
}

/// The session actions the API and the dashboard share: validate the input, call the pool, write the audit row.
/// Authorization (token, OTP, sign-in) stays with each caller; every failure is an ``APIError``.
struct SessionActions: Sendable {
    let dependencies: AdminAPIDependencies

    /// A QR code to scan and its remaining lifetime in seconds (starts pairing if needed).
    func qrCode(_ tenant: TenantName, by caller: ActionCaller) async throws(APIError) -> (qr: String, expiresIn: Int) {
        let status: SessionStatus
        do { status = try await dependencies.pool.qrCode(for: tenant) } catch { throw APIError.from(error) }
        await audit("pairing.qr", tenant: tenant, by: caller)
        return (status.qr ?? "", Self.remaining(until: status.qrExpiresAt))
    }

    /// A link code for pairing by phone number; the number must be 7 to 15 digits, country code first.
    func pairingCode(_ tenant: TenantName, number: String, by caller: ActionCaller) async throws(APIError) -> (code: String, expiresIn: Int) {
        let phone = try Self.phoneNumber(number)
        let code: String
        do { code = try await dependencies.pool.pairingCode(for: tenant, phoneNumber: phone.digits) } catch { throw APIError.from(error) }
        await audit("pairing.code", tenant: tenant, by: caller)
        let status = await dependencies.pool.status(of: tenant)
        return (code, Self.remaining(until: status.qrExpiresAt))
    }

    /// The groups of the tenant's connected account.
    func groups(_ tenant: TenantName) async throws(APIError) -> [SessionGroup] {
        do { return try await dependencies.pool.groups(for: tenant) } catch { throw APIError.from(error) }
    }

    /// Sends a text from the tenant's connected account: `text` 1 to 65,536 bytes; failures in the messages API's words.
    func sendText(_ tenant: TenantName, to recipient: String, text: String, idempotencyKey: String?) async throws(APIError) -> SentText {
        guard !recipient.isEmpty else { throw APIError.badRequest("invalid_recipient", "'to' is required: a phone number or a JID") }
        guard !text.isEmpty, text.utf8.count <= Self.maximumTextBytes else {
            throw APIError.badRequest("invalid_text", "'text' must be 1 to \(Self.maximumTextBytes) bytes of UTF-8")
        }
        do { return try await dependencies.pool.sendText(text, to: recipient, for: tenant, idempotencyKey: idempotencyKey) } catch {
            // A session that is not connected is `not_connected` here (`wrong_state` elsewhere).
            throw error.kind == .wrongState ? APIError(.conflict, "not_connected", error.message) : APIError.from(error)
        }
    }

    /// The longest text, in UTF-8 bytes.
    static let maximumTextBytes = 65_536

    /// Unlinks the device and deletes its keys.
    func logout(_ tenant: TenantName, by caller: ActionCaller) async throws(APIError) {
        do { try await dependencies.pool.logout(tenant) } catch { throw APIError.from(error) }
        await audit("session.logout", tenant: tenant, by: caller)
    }

    /// Stops and starts the tenant's session on this node.
    func restart(_ tenant: TenantName, by caller: ActionCaller) async throws(APIError) {
        do { try await dependencies.pool.restart(tenant) } catch { throw APIError.from(error) }
        await audit("session.restart", tenant: tenant, by: caller)
    }

    /// Writes one audit row; a failed write is logged, not raised (the action already happened).
    func audit(_ action: String, tenant: TenantName?, by caller: ActionCaller, detail: String? = nil) async {
        let detail = [caller.channel, detail].compactMap { $0 }.joined(separator: "; ")
        let event = AuditEvent(
            at: Date(), actor: caller.actor, action: action, tenant: tenant?.rawValue, clientAddress: caller.clientAddress,
            detail: detail.isEmpty ? nil : detail)
        do { try await dependencies.audit.appendAudit(event) } catch {
            caller.logger.error("audit log write failed", metadata: ["action": "\(action)", "error": "\(error)"])
        }
    }

    /// The one phone-number rule for pairing by code, as an API error.
    static func phoneNumber(_ number: String?) throws(APIError) -> PhoneNumber {
        guard let number, !number.isEmpty else { throw APIError.badRequest("number_required", "number is required") }
        do { return try PhoneNumber(number, allowingSeparators: false) } catch {
            throw APIError.badRequest("number_invalid", "number must be 7 to 15 digits, country code first, no + or spaces: \(error)")
        }
    }

    /// Whole seconds left until `deadline` (0 if none or past).
    static func remaining(until deadline: Date?) -> Int {
        deadline.map { max(0, Int($0.timeIntervalSinceNow.rounded(.down))) } ?? 0
    }
}
