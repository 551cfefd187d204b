import Foundation

/// An admin token: `wah_<tenant>_<43 base64url characters of 256 random bits>`; the operator's is `wahop_<…>`.
public struct AdminToken: Sendable {
    /// The tenant the token names, or nil for the operator token.
    public let tenant: TenantName?
    /// The full token text as shown once to its owner.
    public let text: String

    static let tenantPrefix = "wah_"
    static let operatorPrefix = "wahop_"
    static let secretLength = 43

    /// A new random token for `tenant`.
    public static func generate(for tenant: TenantName) -> AdminToken {
        AdminToken(tenant: tenant, text: tenantPrefix + tenant.rawValue + "_" + randomSecret())
    }

    /// A new random operator token.
    public static func generateOperator() -> AdminToken {
        AdminToken(tenant: nil, text: operatorPrefix + randomSecret())
    }

    /// Parses a presented token's shape (not its validity); nil if it is not shaped like one of ours.
    public static func parse(_ text: String) -> AdminToken? {
        guard text.utf8.count <= 160 else { return nil }
        if text.hasPrefix(operatorPrefix) {
            let secret = text.dropFirst(operatorPrefix.count)
            return isSecret(secret) ? AdminToken(tenant: nil, text: text) : nil
        }
        guard text.hasPrefix(tenantPrefix) else { return nil }
        let rest = text.dropFirst(tenantPrefix.count)
        guard let separator = rest.firstIndex(of: "_"),
            let tenant = try? TenantName(String(rest[..<separator])),
            isSecret(rest[rest.index(after: separator)...])
        else { return nil }
        return AdminToken(tenant: tenant, text: text)
    }

    private static func randomSecret() -> String { SecureRandom.base64URL(32) }

    private static func isSecret(_ text: Substring) -> Bool {
        text.utf8.count == secretLength
            && text.utf8.allSatisfy { byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                    || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_")
            }
    }
}
