import Foundation
import HTTPTypes
import Hummingbird
import ServiceLifecycle
import Logging
import Mustache
import NIOCore
import SessionPool
import Tenancy
import WahostBasics

/// The operator and tenant dashboard at `/dashboard/`: server-rendered pages, a live tenant page fed by
/// server-sent events from the pool, the QR code as SVG, cookie sessions with CSRF tokens on every form.
struct DashboardRoutes: Sendable {
    let dependencies: AdminAPIDependencies
    let templates: MustacheLibrary
    let sessions: DashboardSessions

    static let cookieName = "wahost_session"
    /// How often an open event stream re-checks its sign-in in the database (ended on another node or by the CLI).
    static let streamRecheckInterval: Duration = .seconds(5)

    init(dependencies: AdminAPIDependencies, sessions: DashboardSessions) throws {
        self.dependencies = dependencies
        self.sessions = sessions
        var loaded: [String: MustacheTemplate] = [:]
        for name in ["head", "foot", "signin", "groups", "messages", "tenant", "operator"] {
            guard let url = Bundle.module.url(forResource: name, withExtension: "mustache", subdirectory: "templates") else {
                throw DashboardError("template \(name).mustache is missing from the AdminAPI resources")
            }
            loaded[name] = try MustacheTemplate(string: try String(contentsOf: url, encoding: .utf8))
        }
        templates = MustacheLibrary(templates: loaded)
    }

    // MARK: Forms

    struct SignInForm: Decodable {
        let kind: String?
        let tenant: String?
        let token: String?
        let otp: String?
    }

    struct TenantForm: Decodable {
        let csrf: String?
        let tenant: String?
        let number: String?
        let otp: String?
        let confirm: String?
        let to: String?
        let text: String?
    }

    struct CreateTenantForm: Decodable {
        let csrf: String?
        let name: String?
        let mfa: String?
    }

    struct CSRFForm: Decodable {
        let csrf: String?
    }

    /// The routes on `sessionRouter` act on a tenant's running session: another node's session answers from that node.
    func register(on router: Router<AdminRequestContext>, sessionRouter: some RouterMethods<AdminRequestContext>) {
        router.get("dashboard/") { request, context in try await home(request, context) }
        router.get("dashboard/static/:file") { _, context in try staticFile(context) }
        router.post("dashboard/sign-in") { request, context in try await signIn(request, context) }
        router.post("dashboard/sign-out") { request, context in try await signOut(request, context) }
        sessionRouter.post("dashboard/sign-in/code") { request, context in try await sendSignInCode(request, context) }
        sessionRouter.post("dashboard/otp/code") { request, context in try await sendTenantCode(request, context) }
        sessionRouter.get("dashboard/tenant") { request, context in try await tenantPage(request, context) }
        sessionRouter.get("dashboard/events") { request, context in try await events(request, context) }
        sessionRouter.get("dashboard/groups") { request, context in try await groupsFragment(request, context) }
        router.get("dashboard/messages") { request, context in try await messagesFragment(request, context) }
        sessionRouter.post("dashboard/messages/send") { request, context in try await sendMessage(request, context) }
        sessionRouter.post("dashboard/pairing/start") { request, context in try await startPairing(request, context) }
        sessionRouter.post("dashboard/pairing/code") { request, context in try await pairingCode(request, context) }
        sessionRouter.post("dashboard/logout") { request, context in try await logout(request, context) }
        sessionRouter.post("dashboard/demo/scan") { request, context in try await demoScan(request, context) }
        router.get("dashboard/operator") { request, context in try await operatorPage(request, context, created: nil) }
        sessionRouter.post("dashboard/operator/restart") { request, context in try await operatorRestart(request, context) }
        router.post("dashboard/operator/tenants") { request, context in try await operatorCreate(request, context) }
    }

    // MARK: Pages

    private func home(_ request: Request, _ context: AdminRequestContext) async throws -> Response {
        guard let session = try await currentSession(request) else { return try page("signin", base(nil, title: "Sign in", page: "signin")) }
        switch session.principal {
        case .tenant: return redirect("/dashboard/tenant")
        case .operator: return redirect("/dashboard/operator")
        }
    }

    private func signIn(_ request: Request, _ context: AdminRequestContext) async throws -> Response {
        try checkOrigin(request)
        let form = try await decodeForm(SignInForm.self, request, context)
        let address = context.clientAddress
        var values = base(nil, title: "Sign in", page: "signin")
        values["tenant"] = form.tenant
        do {
            let principal: DashboardPrincipal
            // The generation is read before the credentials are checked: a rotation in between ends this session at once.
            var generation: String?
            if form.kind == "operator" {
                generation = try await credentialGeneration(of: .operator)
                try await dependencies.tenants.authenticateOperator(token: form.token, clientAddress: address)
                principal = .operator
            } else {
                guard let text = form.tenant, let name = try? TenantName(text) else {
                    values["error"] = "Enter the tenant name and its admin token."
                    return try page("signin", values, status: .badRequest)
                }
                generation = try await credentialGeneration(of: .tenant(name))
                let tenant = try await dependencies.tenants.authenticateTenant(token: form.token, clientAddress: address)
                guard tenant == name else {
                    values["error"] = "This admin token does not belong to tenant \(name)."
                    return try page("signin", values, status: .forbidden)
                }
                try await dependencies.tenants.verifyOTP(for: tenant, code: form.otp, clientAddress: address)
                principal = .tenant(tenant)
            }
            guard let generation else { throw AuthenticationError(.tokenInvalid) }
            let session = try await sessions.create(for: principal, generation: generation)
            await audit("dashboard.sign_in", principal: principal, context)
            var response = redirect("/dashboard/")
            response.headers[.setCookie] = cookie(session.id, request: request, maxAge: Int(DashboardSignIns.lifetime))
            return response
        } catch let error as AuthenticationError {
            values["error"] = Self.message(for: error)
            return try page("signin", values, status: APIError.from(error).status)
        }
    }

    private func signOut(_ request: Request, _ context: AdminRequestContext) async throws -> Response {
        let session = try await requireSession(request, context, form: CSRFForm.self).0
        try await sessions.remove(id: session.id)
        var response = redirect("/dashboard/")
        response.headers[.setCookie] = cookie("", request: request, maxAge: 0)
        return response
    }

    private func tenantPage(_ request: Request, _ context: AdminRequestContext, error: String? = nil, notice: String? = nil, linkCode: String? = nil, status: HTTPResponse.Status = .ok) async throws -> Response {
        guard let session = try await currentSession(request) else { return redirect("/dashboard/") }
        let tenant = try await tenantFor(session, request.uri.queryParameters["tenant"].map(String.init))
        return try await renderTenant(tenant, session, error: error, notice: notice, linkCode: linkCode, status: status)
    }

    func renderTenant(
        _ tenant: Tenant, _ session: DashboardSignIn, error: String? = nil, notice: String? = nil, linkCode: String? = nil,
        status httpStatus: HTTPResponse.Status = .ok
    ) async throws -> Response {
        let status = await dependencies.pool.status(of: tenant.name)
        var values = base(session, title: tenant.name.rawValue, page: "tenant")
        values["error"] = error
        values["notice"] = notice
        values["tenant"] = tenant.name.rawValue
        values["mfa"] = tenant.mfaEnabled ? true : nil
        values["state"] = status.state.rawValue
        values["stateLabel"] = Self.label(status.state)
        values["me"] = status.me
        values["lastError"] = status.lastError
        let query = "?tenant=\(tenant.name.rawValue)"
        values["eventsURL"] = "/dashboard/events" + query
        values["groupsURL"] = "/dashboard/groups" + query
        let paired = status.state == .connected || status.state == .reconnecting || (status.state == .connecting && status.me != nil)
        values["showPairing"] = paired ? nil : true
        if let qr = status.qr, let svg = QRCodeSVG.render(qr) {
            values["qrSVG"] = svg
            values["expiresIn"] = max(0, Int(status.qrExpiresAt?.timeIntervalSinceNow.rounded(.down) ?? 0))
        }
        values["linkCode"] = linkCode
        let timedOut = status.state == .stopped && status.lastError != nil
        values["startLabel"] = timedOut ? "Restart pairing" : "Show a QR code"
        values["pairingHint"] = timedOut ? "The last pairing ended: \(status.lastError ?? "")" : "Not linked to a phone yet."
        values.merge(try await groupValues(tenant.name, status: status)) { $1 }
        values["messagesURL"] = "/dashboard/messages" + query
        values.merge(await messageValues(tenant.name)) { $1 }
        return try page("tenant", values, status: httpStatus)
    }

    private func groupValues(_ tenant: TenantName, status: SessionStatus) async throws -> [String: Any] {
        guard status.state == .connected else { return ["groupsEmpty": "Groups appear once the session is connected."] }
        if let owner = await dependencies.pool.owner(of: tenant) {
            return ["groupsEmpty": "Groups are listed by the node running this session (\(owner.nodeID))."]
        }
        do {
            let groups = try await actions.groups(tenant)
            guard !groups.isEmpty else { return ["groupsEmpty": "This account is in no groups."] }
            return [
                "hasGroups": true, "groupCount": groups.count,
                "groups": groups.map { ["subject": $0.subject, "id": $0.id, "participants": $0.participants.count] as [String: Any] },
            ]
        } catch {
            return ["groupsEmpty": "Groups could not be loaded: \(error.message)"]
        }
    }

    private func groupsFragment(_ request: Request, _ context: AdminRequestContext) async throws -> Response {
        guard let session = try await currentSession(request) else { throw APIError(.unauthorized, "signed_out", "sign in again") }
        let tenant = try await tenantFor(session, request.uri.queryParameters["tenant"].map(String.init))
        let status = await dependencies.pool.status(of: tenant.name)
        return try page("groups", try await groupValues(tenant.name, status: status))
    }

    /// Server-sent events: one `status` event per change of the tenant's session, a comment every 15 s.
    private func events(_ request: Request, _ context: AdminRequestContext) async throws -> Response {
        guard let session = try await currentSession(request) else { throw APIError(.unauthorized, "signed_out", "sign in again") }
        let tenant = try await tenantFor(session, request.uri.queryParameters["tenant"].map(String.init))
        let (lines, sink) = AsyncStream.makeStream(of: String.self, bufferingPolicy: .bufferingNewest(16))
        let streamKey = UUID()
        let sessions = self.sessions
        switch await sessions.addStream(sink, key: streamKey, session: session) {
        case .opened: break
        case .tooMany:
            throw APIError(.tooManyRequests, "too_many_streams", "this sign-in has \(DashboardSessions.streamsPerSession) live pages open already")
        }
        let updates = await dependencies.pool.updates(of: tenant.name)
        let forwarder = Task {
            for await status in updates { sink.yield(Self.event(for: status)) }
            sink.finish()
        }
        // Re-checks the sign-in in the database every few seconds (one indexed read), so a sign-out, rotation or
        // deletion on any node, or by the CLI, closes the stream here; a comment every 15 s.
        let ticker = Task {
            var sinceKeepalive: Duration = .zero
            while !Task.isCancelled {
                try? await Task.sleep(for: Self.streamRecheckInterval)
                if Task.isCancelled { return }
                // A database that does not answer leaves the stream open, as before; only a definite "gone" ends it.
                let ended: Bool
                do { ended = try await sessions.session(id: session.id) == nil } catch { ended = false }
                if session.expiresAt <= Date() || ended {
                    await sessions.closeStreams(session: session.id)
                    return
                }
                sinceKeepalive += Self.streamRecheckInterval
                if sinceKeepalive >= .seconds(15) {
                    sink.yield(": keepalive\n\n")
                    sinceKeepalive = .zero
                }
            }
        }
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-store"
        return Response(
            status: .ok, headers: headers,
            body: ResponseBody { writer in
                defer {
                    forwarder.cancel()
                    ticker.cancel()
                    Task { await sessions.removeStream(key: streamKey, session: session.id) }
                }
                // The server's graceful shutdown ends the stream (the page reconnects to another node); a stream left
                // open would hold the shutdown until its sign-in is re-checked, or forever if the check cannot answer.
                try await withGracefulShutdownHandler {
                    for await line in lines { try await writer.write(ByteBuffer(string: line)) }
                } onGracefulShutdown: {
                    sink.finish()
                }
                try await writer.finish(nil)
            })
    }

    static func event(for status: SessionStatus) -> String {
        var object: [String: Any] = ["state": status.state.rawValue, "connected": status.connected]
        object["me"] = status.me ?? NSNull()
        object["last_error"] = status.lastError ?? NSNull()
        object["pairing_method"] = status.pairingMethod?.rawValue ?? NSNull()
        if let qr = status.qr, let svg = QRCodeSVG.render(qr) {
            object["qr_svg"] = svg
            object["expires_in"] = max(0, Int(status.qrExpiresAt?.timeIntervalSinceNow.rounded(.down) ?? 0))
        }
        let data = (try? JSONSerialization.data(withJSONObject: object)) ?? Data("{}".utf8)
        return "event: status\ndata: " + String(decoding: data, as: UTF8.self) + "\n\n"
    }

    // MARK: Tenant actions

    private func startPairing(_ request: Request, _ context: AdminRequestContext) async throws -> Response {
        let (session, form) = try await requireSession(request, context, form: TenantForm.self)
        let tenant = try await tenantFor(session, form.tenant)
        do {
            _ = try await actions.qrCode(tenant.name, by: caller(session, context))
        } catch {
            return try await renderTenant(tenant, session, error: "Pairing could not start: \(error.message)", status: APIError.from(error).status)
        }
        return redirect("/dashboard/tenant?tenant=\(tenant.name.rawValue)")
    }

    private func pairingCode(_ request: Request, _ context: AdminRequestContext) async throws -> Response {
        let (session, form) = try await requireSession(request, context, form: TenantForm.self)
        let tenant = try await tenantFor(session, form.tenant)
        guard (try? SessionActions.phoneNumber(form.number)) != nil else {
            return try await renderTenant(
                tenant, session, error: "Enter the phone number with its country code, digits only (7 to 15).", status: .badRequest)
        }
        do {
            let code = try await actions.pairingCode(tenant.name, number: form.number ?? "", by: caller(session, context)).code
            let shown = code.count == 8 ? String(code.prefix(4)) + "-" + String(code.suffix(4)) : code
            return try await renderTenant(tenant, session, linkCode: shown)
        } catch {
            return try await renderTenant(tenant, session, error: "No code: \(APIError.from(error).message)", status: APIError.from(error).status)
        }
    }

    private func logout(_ request: Request, _ context: AdminRequestContext) async throws -> Response {
        let (session, form) = try await requireSession(request, context, form: TenantForm.self)
        let tenant = try await tenantFor(session, form.tenant)
        guard form.confirm == "yes" else {
            return try await renderTenant(tenant, session, error: "Tick the confirmation to log out.", status: .badRequest)
        }
        if case .tenant = session.principal {
            do {
                try await dependencies.tenants.verifyOTP(for: tenant.name, code: form.otp, clientAddress: context.clientAddress)
            } catch {
                return try await renderTenant(tenant, session, error: Self.message(for: error), status: APIError.from(error).status)
            }
        }
        do {
            try await actions.logout(tenant.name, by: caller(session, context))
        } catch {
            return try await renderTenant(tenant, session, error: "Logout failed: \(error.message)", status: APIError.from(error).status)
        }
        return try await renderTenant(tenant, session, notice: "Logged out. This device is unlinked and its keys are deleted.")
    }

    private func demoScan(_ request: Request, _ context: AdminRequestContext) async throws -> Response {
        let (session, form) = try await requireSession(request, context, form: TenantForm.self)
        let tenant = try await tenantFor(session, form.tenant)
        guard let phone = dependencies.demoPhone else { throw APIError(.notFound, "not_found", "no such route") }
        guard let qr = await dependencies.pool.status(of: tenant.name).qr else {
            return try await renderTenant(tenant, session, error: "There is no QR code to scan; start pairing first.", status: .conflict)
        }
        do { try await phone(qr) } catch {
            return try await renderTenant(tenant, session, error: "The simulated phone could not scan: \(error)", status: .conflict)
        }
        return redirect("/dashboard/tenant?tenant=\(tenant.name.rawValue)")
    }
}
