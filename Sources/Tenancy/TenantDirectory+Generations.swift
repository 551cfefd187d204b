import Crypto
import Foundation

extension TenantDirectory {
    /// A fingerprint of what a tenant's sign-in rests on (token hash, OTP secret); nil once the tenant is gone.
    /// It changes on `rotate-token`, `reset-otp` and on deletion and re-creation, on every node sharing the database.
    public func credentialGeneration(ofTenant name: TenantName) async throws(TenancyError) -> String? {
        let tokenHash: String?
        let otp: StoredOTPSecret?
        do {
            tokenHash = try await repositories.adminTokenHash(for: name)
            otp = try await repositories.otpSecret(for: name)
        } catch {
            throw TenancyError(error)
        }
        return Self.tenantGeneration(name, tokenHash: tokenHash, sealedOTPSecret: otp?.sealedSecret)
    }

    /// A fingerprint of the operator token hash; changes when the operator token is rotated, nil if none was issued.
    public func operatorCredentialGeneration() async throws(TenancyError) -> String? {
        let hash: String?
        do { hash = try await repositories.operatorTokenHash() } catch { throw TenancyError(error) }
        return Self.operatorGeneration(tokenHash: hash)
    }

    /// The tenant's generation from its token hash and sealed OTP secret; nil without a token hash (no such tenant).
    static func tenantGeneration(_ name: TenantName, tokenHash: String?, sealedOTPSecret: [UInt8]?) -> String? {
        guard let tokenHash else { return nil }
        return fingerprint(["tenant", name.rawValue, tokenHash] + (sealedOTPSecret.map { [Data($0).base64EncodedString()] } ?? []))
    }

    /// The operator's generation from the operator token hash; nil if none was issued.
    static func operatorGeneration(tokenHash: String?) -> String? {
        tokenHash.map { fingerprint(["operator", $0]) }
    }

    private static func fingerprint(_ parts: [String]) -> String {
        SHA256.hash(data: Array(parts.joined(separator: "\u{0}").utf8)).map { String(format: "%02x", $0) }.joined()
    }
}
