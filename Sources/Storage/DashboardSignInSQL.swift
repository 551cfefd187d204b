import Foundation
import Tenancy

/// What both backends share about `dashboard_signins`: the lookup statement and the principal's column.
enum DashboardSignInSQL {
    /// A sign-in with its principal's current token hash and sealed OTP secret, over primary keys; the caller adds
    /// `WHERE s.id_hash = … AND s.expires_at_ms > …` in its backend's placeholders.
    static let lookupSelect = """
        SELECT s.tenant, s.generation, s.created_at_ms, s.expires_at_ms,
            CASE WHEN s.tenant IS NULL THEN (SELECT phc FROM operator_tokens WHERE id = 1)
                ELSE (SELECT phc FROM admin_tokens WHERE tenant = s.tenant) END AS phc,
            (SELECT sealed FROM otp_secrets WHERE tenant = s.tenant) AS otp
        FROM dashboard_signins s
        """

    /// The `tenant` column of a principal's rows: its name, or NULL for the operator.
    static func tenantColumn(_ principal: DashboardPrincipal) -> String? {
        switch principal {
        case .tenant(let name): name.rawValue
        case .operator: nil
        }
    }

    /// The principal a row's `tenant` column names.
    static func principal(_ tenant: String?) throws(RepositoryError) -> DashboardPrincipal {
        guard let tenant else { return .operator }
        guard let name = try? TenantName(tenant) else { throw RepositoryError(.corrupt, "invalid tenant name in dashboard_signins") }
        return .tenant(name)
    }
}
