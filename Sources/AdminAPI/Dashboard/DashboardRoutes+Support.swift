import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Mustache
import NIOCore
import SessionPool
import Tenancy

/// Sign-in checks, CSRF, forms and rendering shared by the dashboard's pages.
extension DashboardRoutes {
    // MARK: Sessions, CSRF, rendering

    /// The sign-in named by the cookie, if it exists, has not expired and its credentials were not changed since;
    /// one database read, so a cookie any node issued works here and one ended on any node does not.
    func currentSession(_ request: Request) async throws -> DashboardSignIn? {
        try await sessions.session(id: Self.cookieValue(request.headers[.cookie]))
    }

    func credentialGeneration(of principal: DashboardPrincipal) async throws -> String? {
        do {
            switch principal {
            case .tenant(let name): return try await dependencies.tenants.credentialGeneration(ofTenant: name)
            case .operator: return try await dependencies.tenants.operatorCredentialGeneration()
            }
        } catch {
            throw APIError.from(error)
        }
    }

    /// The signed-in session for a state-changing form: same origin, matching CSRF token; else 403.
    func requireSession<Form: Decodable>(
        _ request: Request, _ context: AdminRequestContext, form type: Form.Type
    ) async throws -> (DashboardSignIn, Form) {
        try checkOrigin(request)
        guard let session = try await currentSession(request) else {
            throw APIError(.forbidden, "signed_out", "not signed in (or the session expired); sign in again")
        }
        let form = try await decodeForm(type, request, context)
        let presented = (form as? any CSRFCarrying)?.csrfValue
        guard sessions.signIns.isCSRFToken(presented, of: session) else {
            await audit("dashboard.csrf_refused", principal: session.principal, context)
            throw APIError(.forbidden, "csrf_invalid", "this form is stale or was not sent by the dashboard; reload and try again")
        }
        return (session, form)
    }

    /// Refuses a POST whose `Origin` (when the browser sends one) is not this server.
    func checkOrigin(_ request: Request) throws {
        guard let origin = request.headers[.origin] else { return }
        guard let host = request.head.authority,
            origin == "http://\(host)" || origin == "https://\(host)"
        else { throw APIError(.forbidden, "cross_origin", "cross-site requests are refused") }
    }

    func decodeForm<Form: Decodable>(_ type: Form.Type, _ request: Request, _ context: AdminRequestContext) async throws -> Form {
        let buffer: ByteBuffer
        do { buffer = try await request.body.collect(upTo: Self.maximumFormBytes) } catch { throw Self.formTooLarge }
        do { return try URLEncodedFormDecoder().decode(type, from: String(buffer: buffer)) } catch {
            throw APIError.badRequest("invalid_form", "the form could not be read")
        }
    }

    /// The tenant a session may act on: its own, or any one (named in the form or query) for the operator.
    func tenantFor(_ session: DashboardSignIn, _ requested: String?) async throws -> Tenant {
        let name: TenantName
        switch session.principal {
        case .tenant(let own):
            if let requested, requested != own.rawValue { throw APIError.wrongTenant }
            name = own
        case .operator:
            guard let requested, let parsed = try? TenantName(requested) else { throw APIError.unknownTenant }
            name = parsed
        }
        let tenant: Tenant?
        do { tenant = try await dependencies.tenants.tenant(named: name) } catch { throw APIError.from(error) }
        guard let tenant else { throw APIError.unknownTenant }
        return tenant
    }

    func base(_ session: DashboardSignIn?, title: String, page: String) -> [String: Any] {
        var values: [String: Any] = ["title": title, "page": page]
        if dependencies.demoPhone != nil { values["demo"] = true }
        if let session {
            values["signedIn"] = true
            values["csrf"] = session.csrfToken
            switch session.principal {
            case .tenant(let name): values["who"] = "tenant \(name)"
            case .operator: values["who"] = "operator"
            }
        }
        return values
    }

    func page(_ template: String, _ values: [String: Any], status: HTTPResponse.Status = .ok) throws -> Response {
        guard let html = templates.render(values, withTemplate: template) else { throw DashboardError("template \(template) did not render") }
        var headers = HTTPFields()
        headers[.contentType] = "text/html; charset=utf-8"
        headers[.cacheControl] = "no-store"
        headers[.contentSecurityPolicy] =
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'"
        headers[.xContentTypeOptions] = "nosniff"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    func redirect(_ location: String) -> Response {
        Response(status: .seeOther, headers: [.location: location, .cacheControl: "no-store"])
    }

    func cookie(_ value: String, request: Request, maxAge: Int) -> String {
        let secure = request.headers[.xForwardedProto] == "https" || request.uri.scheme == .https
        return "\(Self.cookieName)=\(value); Path=/dashboard; Max-Age=\(maxAge); HttpOnly; SameSite=Strict" + (secure ? "; Secure" : "")
    }

    static func cookieValue(_ header: String?) -> String? {
        guard let header else { return nil }
        for part in header.split(separator: ";") {
            let pair = part.trimmingCharacters(in: .whitespaces)
            if pair.hasPrefix(cookieName + "=") { return String(pair.dropFirst(cookieName.count + 1)) }
        }
        return nil
    }

    func staticFile(_ context: AdminRequestContext) throws -> Response {
        guard let file = context.parameters.get("file"), ["dashboard.css", "dashboard.js"].contains(file),
            let url = Bundle.module.url(forResource: file, withExtension: nil, subdirectory: "static"), let data = try? Data(contentsOf: url)
        else { throw APIError(.notFound, "not_found", "no such file") }
        let type = file.hasSuffix(".css") ? "text/css; charset=utf-8" : "text/javascript; charset=utf-8"
        return Response(
            status: .ok, headers: [.contentType: type, .cacheControl: "public, max-age=300"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// The session actions shared with the JSON API.
    var actions: SessionActions { SessionActions(dependencies: dependencies) }

    /// The audit identity of a signed-in principal.
    func caller(_ session: DashboardSignIn, _ context: AdminRequestContext) -> ActionCaller {
        switch session.principal {
        case .tenant(let name): .dashboard("tenant:\(name)", context)
        case .operator: .dashboard("operator", context)
        }
    }

    func audit(_ action: String, principal: DashboardPrincipal, tenant: TenantName? = nil, _ context: AdminRequestContext) async {
        var subject = tenant
        let actor: String
        switch principal {
        case .tenant(let name):
            actor = "tenant:\(name)"
            subject = subject ?? name
        case .operator: actor = "operator"
        }
        await actions.audit(action, tenant: subject, by: .dashboard(actor, context))
    }

    static func label(_ state: SessionState) -> String {
        switch state {
        case .stopped: "not connected"
        case .connecting: "connecting…"
        case .pairing: "waiting for the phone"
        case .connected: "connected"
        case .reconnecting: "reconnecting…"
        case .loggedOut: "logged out"
        case .replaced: "replaced by another session"
        case .failed: "failed"
        }
    }

    static func message(for error: AuthenticationError) -> String {
        switch error.code {
        case .tokenMissing: "Enter the admin token."
        case .tokenInvalid: "That token is not valid."
        case .otpRequired: "This tenant requires a one-time code from your authenticator app."
        case .otpInvalid: "That one-time code is wrong or was already used. Wait for the next code and try again."
        case .lockedOut: "Too many failed attempts. Try again in 15 minutes."
        case .unavailable: "The server cannot check credentials right now."
        case .busy: "Too many sign-ins are being checked right now. Try again in a moment."
        }
    }
}

/// Forms that carry the CSRF token.
protocol CSRFCarrying {
    var csrfValue: String? { get }
}
extension DashboardRoutes.TenantForm: CSRFCarrying { var csrfValue: String? { csrf } }
extension DashboardRoutes.CreateTenantForm: CSRFCarrying { var csrfValue: String? { csrf } }
extension DashboardRoutes.CSRFForm: CSRFCarrying { var csrfValue: String? { csrf } }

/// The dashboard cannot serve (a resource is missing or a template failed).
struct DashboardError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

extension HTTPField.Name {
    static let xContentTypeOptions = HTTPField.Name("x-content-type-options")!
    static let xForwardedProto = HTTPField.Name("x-forwarded-proto")!
}
