import Crypto
import Foundation
import Logging
import WahostBasics

extension TenantDirectory {
    /// Lifetime, wrong tries and request limits of WhatsApp one-time codes.
    public var whatsAppCodePolicy: WhatsAppCodePolicy { configuration.whatsAppCodes }

    /// Sets (or with nil, clears) where the tenant's WhatsApp codes go; returns the digits stored.
    public func setMFANumber(_ number: String?, for name: TenantName, actor: String, clientAddress: String? = nil) async throws(TenancyError)
        -> String?
    {
        let digits = try Self.mfaDigits(number)
        do { try await repositories.setMFANumber(digits, for: name) } catch {
            throw error.kind == .notFound ? TenancyError(.tenantNotFound, "no tenant named \(name)") : TenancyError(error)
        }
        await audit(
            actor: actor, action: "tenant.mfa_number", tenant: name, clientAddress: clientAddress,
            detail: digits.map { "set to \(WhatsAppCode.masked($0))" } ?? "cleared")
        return digits
    }

    /// The digits of an `mfa_number` (7 to 15, country code first, an optional leading `+`); nil or empty clears it.
    static func mfaDigits(_ number: String?) throws(TenancyError) -> String? {
        guard let number, !number.isEmpty else { return nil }
        let bare = number.hasPrefix("+") ? String(number.dropFirst()) : number
        do { return try PhoneNumber(bare, allowingSeparators: false).digits } catch {
            throw TenancyError(.invalidNumber, "mfa_number must be 7 to 15 digits, country code first: \(error)")
        }
    }

    /// Issues a fresh code for an MFA tenant, replacing its live one; `.rateLimited` when the tenant asks too often.
    public func issueWhatsAppCode(for name: TenantName, actor: String, clientAddress: String?) async throws(TenancyError) -> IssuedWhatsAppCode {
        let tenant: Tenant?
        do { tenant = try await repositories.tenant(named: name) } catch { throw TenancyError(error) }
        guard let tenant else { throw TenancyError(.tenantNotFound, "no tenant named \(name)") }
        guard tenant.mfaEnabled else { throw TenancyError(.mfaNotEnabled, "tenant \(name) does not use one-time codes") }
        let policy = configuration.whatsAppCodes
        let moment = now()
        let next: Date?
        do {
            next = try await repositories.recordWhatsAppCodeRequest(for: name, now: moment, policy: policy)
        } catch {
            throw TenancyError(error)
        }
        if let next {
            let seconds = max(1, Int(next.timeIntervalSince(moment).rounded(.up)))
            await audit(actor: actor, action: "otp.whatsapp_refused", tenant: name, clientAddress: clientAddress, detail: "rate limited")
            throw TenancyError(.rateLimited(retryAfter: seconds), "a code was asked for too recently; try again in \(seconds) s")
        }
        let code = WhatsAppCode.generate()
        let stored = StoredWhatsAppCode(
            hash: WhatsAppCode.hash(code, tenant: name, issuedAt: moment, key: whatsAppCodeKey(name)), issuedAt: moment,
            expiresAt: moment.addingTimeInterval(Double(policy.lifetime.components.seconds)))
        do { try await repositories.replaceWhatsAppCode(stored, for: name) } catch { throw TenancyError(error) }
        return IssuedWhatsAppCode(code: code, hash: stored.hash, expiresAt: stored.expiresAt, mfaNumber: tenant.mfaNumber)
    }

    /// Voids a code that could not be delivered and audits why.
    public func voidWhatsAppCode(_ issued: IssuedWhatsAppCode, for name: TenantName, reason: String, actor: String, clientAddress: String?) async {
        do { _ = try await repositories.deleteWhatsAppCode(for: name, hash: issued.hash) } catch {
            logger.error("undelivered WhatsApp code not voided", metadata: ["tenant": "\(name)", "error": "\(error)"])
        }
        await audit(actor: actor, action: "otp.whatsapp_refused", tenant: name, clientAddress: clientAddress, detail: reason)
    }

    /// Deletes the codes expired at `now`, one `otp.whatsapp_expired` audit row each; returns how many.
    public func expireWhatsAppCodes(at now: Date) async throws(TenancyError) -> Int {
        let tenants: [TenantName]
        do { tenants = try await repositories.deleteExpiredWhatsAppCodes(at: now) } catch { throw TenancyError(error) }
        for tenant in tenants { await audit(actor: "system", action: "otp.whatsapp_expired", tenant: tenant, clientAddress: nil, detail: nil) }
        return tenants.count
    }

    /// What a presented code did to the tenant's live WhatsApp code.
    enum WhatsAppCodeUse {
        /// It was the code; it is used up.
        case used
        /// There is no live code, or this was not it.
        case refused
    }

    /// Uses up the live WhatsApp code if `code` is it; a wrong code counts against it, an expired one is deleted.
    func useWhatsAppCode(_ code: String, for tenant: TenantName, clientAddress: String) async throws(AuthenticationError) -> WhatsAppCodeUse {
        let policy = configuration.whatsAppCodes
        do {
            guard let stored = try await repositories.whatsAppCode(for: tenant) else { return .refused }
            guard now() < stored.expiresAt else {
                if try await repositories.deleteWhatsAppCode(for: tenant, hash: stored.hash) {
                    await audit(actor: "system", action: "otp.whatsapp_expired", tenant: tenant, clientAddress: clientAddress, detail: nil)
                }
                return .refused
            }
            if WhatsAppCode.matches(code, stored, tenant: tenant, key: whatsAppCodeKey(tenant)) {
                // Deleting is the use: of two requests racing with the same code, one deletes it and the other finds it gone.
                guard try await repositories.deleteWhatsAppCode(for: tenant, hash: stored.hash) else { return .refused }
                await audit(actor: "tenant:\(tenant)", action: "otp.whatsapp_used", tenant: tenant, clientAddress: clientAddress, detail: nil)
                return .used
            }
            let tries = try await repositories.countWrongTry(onWhatsAppCode: stored.hash, for: tenant, limit: policy.maximumWrongTries)
            if tries == policy.maximumWrongTries {
                await audit(
                    actor: "anonymous", action: "otp.whatsapp_voided", tenant: tenant, clientAddress: clientAddress,
                    detail: "\(policy.maximumWrongTries) wrong codes")
            }
            return .refused
        } catch {
            throw AuthenticationError(.unavailable)
        }
    }

    private func whatsAppCodeKey(_ tenant: TenantName) -> SymmetricKey { masterKey.derivedKey(for: tenant, purpose: .whatsAppCode) }
}
