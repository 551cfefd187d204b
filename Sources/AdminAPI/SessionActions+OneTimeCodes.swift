import Foundation
import HTTPTypes
import SessionPool
import Tenancy

/// Where a one-time code is sent from and to.
struct OneTimeCodeChannel: Sendable, Equatable {
    /// The session that sends it: the tenant's own, or the operator's notifier.
    let sender: TenantName
    /// The number it goes to (digits).
    let number: String
}

extension SessionActions {
    /// Sends a fresh one-time code on WhatsApp to the tenant's `mfa_number` (or its own account); the masked number and
    /// the code's lifetime in seconds. The code is stored before it is sent and voided if it cannot be delivered.
    func sendWhatsAppCode(_ tenant: TenantName, by caller: ActionCaller) async throws(APIError) -> (sentTo: String, expiresIn: Int) {
        let record: Tenant?
        do { record = try await dependencies.tenants.tenant(named: tenant) } catch { throw APIError.from(error) }
        guard let record else { throw APIError.unknownTenant }
        guard record.mfaEnabled else { throw APIError(.conflict, "mfa_not_enabled", "tenant \(tenant) does not use one-time codes") }
        guard let channel = await channel(for: record) else {
            await audit("otp.whatsapp_refused", tenant: tenant, by: caller, detail: "no channel")
            throw APIError(
                .conflict, "otp_channel_unavailable",
                "no connected session can send the code: link this tenant, or set its mfa_number and run serve with --otp-sender")
        }
        let issued: IssuedWhatsAppCode
        do { issued = try await dependencies.tenants.issueWhatsAppCode(for: tenant, actor: caller.actor, clientAddress: caller.clientAddress) } catch {
            throw APIError.from(error)
        }
        let lifetime = dependencies.tenants.whatsAppCodePolicy.lifetime
        do {
            _ = try await dependencies.pool.sendText(
                issued.text(for: tenant, lifetime: lifetime), to: channel.number, for: channel.sender, logged: false)
        } catch {
            await dependencies.tenants.voidWhatsAppCode(
                issued, for: tenant, reason: "not delivered: \(error.kind)", actor: caller.actor, clientAddress: caller.clientAddress)
            switch error.kind {
            case .wrongState, .ownedElsewhere:
                throw APIError(.conflict, "otp_channel_unavailable", "the session that sends codes is not connected; try again")
            case .notOnWhatsApp: throw APIError(.conflict, "otp_channel_unavailable", "the mfa_number is not on WhatsApp")
            default: throw APIError.from(error)
            }
        }
        let via = channel.sender == tenant ? "own session" : "notifier \(channel.sender)"
        await audit("otp.whatsapp_sent", tenant: tenant, by: caller, detail: "to \(WhatsAppCode.masked(channel.number)) via \(via)")
        return (WhatsAppCode.masked(channel.number), Int(lifetime.components.seconds))
    }

    /// The tenant's own connected session (to its `mfa_number`, else to itself), else the notifier (to the `mfa_number`).
    func channel(for tenant: Tenant) async -> OneTimeCodeChannel? {
        let own = await dependencies.pool.status(of: tenant.name)
        if own.connected, let number = tenant.mfaNumber ?? own.me.flatMap(Self.accountNumber) {
            return OneTimeCodeChannel(sender: tenant.name, number: number)
        }
        guard let notifier = dependencies.otpSender, notifier != tenant.name, let number = tenant.mfaNumber,
            await dependencies.pool.status(of: notifier).connected
        else { return nil }
        return OneTimeCodeChannel(sender: notifier, number: number)
    }

    /// The phone number of an account JID (`15551234567:12@s.whatsapp.net` → `15551234567`).
    static func accountNumber(_ jid: String) -> String? {
        let user = jid.prefix { $0 != ":" && $0 != "@" }
        return !user.isEmpty && user.allSatisfy({ $0.isASCII && $0.isNumber }) ? String(user) : nil
    }
}
