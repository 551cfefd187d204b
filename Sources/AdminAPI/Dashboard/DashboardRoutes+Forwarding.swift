import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import SessionPool
import Tenancy

/// The dashboard's side of forwarding: which tenant's session a request acts on, and the page shown when the node
/// running that session cannot be reached.
extension DashboardRoutes: SessionOwnerRouting {
    /// The largest form the dashboard reads.
    static let maximumFormBytes = 16 * 1024

    /// The one field forwarding reads from a form.
    private struct TenantField: Decodable {
        let tenant: String?
    }

    /// A tenant's sign-in acts on its own tenant only, whatever the form says; otherwise the tenant the form (POST) or
    /// query names. The owner checks the sign-in, the CSRF token and the tenant again, as for a request made there.
    func tenant(of request: inout Request, context: AdminRequestContext) async throws -> TenantName? {
        if case .tenant(let own)? = try? await currentSession(request)?.principal { return own }
        return try await requestedTenant(&request).flatMap { try? TenantName($0) }
    }

    /// The tenant a POST's form or another request's query names, read as the routes read it (the body is buffered).
    func requestedTenant(_ request: inout Request) async throws -> String? {
        guard request.method == .post else { return request.uri.queryParameters["tenant"].map(String.init) }
        let body: ByteBuffer
        do { body = try await request.collectBody(upTo: Self.maximumFormBytes) } catch { throw Self.formTooLarge }
        return (try? URLEncodedFormDecoder().decode(TenantField.self, from: String(buffer: body)))?.tenant
    }

    /// The page the request came from, with what happened and when to try again; the script-fetched stream and
    /// fragment keep the JSON error (the page shows its live updates as lost).
    func ownerUnreachable(_ error: APIError, owner: SessionOwner, request: Request, context: AdminRequestContext) async throws -> Response {
        let retry = error.retryAfter ?? APIError.ownedElsewhereRetry
        let message = "The node running this session (\(owner.nodeID)) cannot be reached right now. If it stopped, another node takes "
            + "the session over within \(retry) s; try again then."
        var request = request
        var response: Response
        switch request.uri.path {
        case "/dashboard/events", "/dashboard/groups":
            throw error
        case "/dashboard/sign-in/code":
            var values = base(nil, title: "Sign in", page: "signin")
            values["tenant"] = try await requestedTenant(&request)
            values["error"] = message
            response = try page("signin", values, status: error.status)
        case "/dashboard/operator/restart":
            response = try await operatorPage(request, context, created: nil, error: message, status: error.status)
        default:
            guard let session = try await currentSession(request) else { return redirect("/dashboard/") }
            let tenant = try await tenantFor(session, try await requestedTenant(&request))
            response = try await renderTenant(tenant, session, error: message, status: error.status)
        }
        response.headers[.retryAfter] = String(retry)
        return response
    }

    /// A form larger than ``maximumFormBytes``.
    static let formTooLarge = APIError(.contentTooLarge, "body_too_large", "the form is too large")
}
