import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import SessionPool
import Tenancy

/// An error answered as `{"error": {"code": "…", "message": "…"}}` with its HTTP status.
public struct APIError: HTTPResponseError, Sendable {
    /// The HTTP status.
    public let status: HTTPResponse.Status
    /// A stable machine-readable code, e.g. `otp_invalid`.
    public let code: String
    /// A human-readable message without secrets.
    public let message: String
    /// Extra response headers (e.g. `Retry-After`).
    var headers: HTTPFields = [:]
    /// Seconds until a refused request may be repeated, as `retry_after` in the body and `Retry-After`.
    var retryAfter: Int?

    public init(_ status: HTTPResponse.Status, _ code: String, _ message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    init(_ status: HTTPResponse.Status, _ code: String, _ message: String, retryAfter: Int) {
        self.init(status, code, message)
        self.retryAfter = retryAfter
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let data = try JSONEncoder().encode(ErrorBody(error: .init(code: code, message: message, retryAfter: retryAfter)))
        var fields = headers
        if let retryAfter { fields[.retryAfter] = String(retryAfter) }
        fields[.contentType] = "application/json; charset=utf-8"
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func badRequest(_ code: String, _ message: String) -> APIError { APIError(.badRequest, code, message) }
    static let unknownTenant = APIError(.notFound, "tenant_not_found", "no such tenant")
    static let wrongTenant = APIError(.forbidden, "token_wrong_tenant", "the admin token does not belong to this tenant")

    /// Maps an authentication failure: 401 for tokens, 403 for OTP, 429 for lockout, 503 for storage.
    static func from(_ error: AuthenticationError) -> APIError {
        switch error.code {
        case .tokenMissing: return APIError(.unauthorized, "token_missing", "x-admin-token header required")
        case .tokenInvalid: return APIError(.unauthorized, "token_invalid", "admin token invalid")
        case .otpRequired: return APIError(.forbidden, "otp_required", "x-otp header required for this tenant")
        case .otpInvalid: return APIError(.forbidden, "otp_invalid", "one-time code invalid or already used")
        case .lockedOut(let until):
            var error = APIError(.tooManyRequests, "locked_out", "too many failed attempts; try again later")
            error.headers[.retryAfter] = String(max(1, Int(until.timeIntervalSinceNow.rounded(.up))))
            return error
        case .unavailable: return storageUnavailable("credential store unavailable")
        case .busy:
            var error = APIError(.serviceUnavailable, "busy", "too many sign-ins in progress; try again shortly")
            error.headers[.retryAfter] = "1"
            return error
        }
    }

    /// The database is away: a 503 with the `retry_after` of ``StorageOutage/retryAfterSeconds``.
    static func storageUnavailable(_ message: String = "the database is unavailable") -> APIError {
        APIError(.serviceUnavailable, "storage_unavailable", message, retryAfter: StorageOutage.retryAfterSeconds)
    }

    /// Seconds a `not_owned_here` caller waits: by then this node has read the leases again and forwards, or runs the session.
    static let ownedElsewhereRetry = 2

    /// Maps a session pool failure: 409 wrong state, 503 elsewhere or upstream, 422 bad input.
    static func from(_ error: SessionPoolError) -> APIError {
        switch error.kind {
        case .wrongState: APIError(.conflict, "wrong_state", error.message)
        case .ownedElsewhere: APIError(.serviceUnavailable, "not_owned_here", error.message, retryAfter: ownedElsewhereRetry)
        case .moving: APIError(.serviceUnavailable, "session_moving", error.message, retryAfter: 1)
        case .upstreamUnavailable: APIError(.serviceUnavailable, "upstream_unavailable", error.message)
        case .invalidInput: APIError(.unprocessableContent, "invalid_input", error.message)
        case .unavailable: APIError(.serviceUnavailable, "unavailable", error.message, retryAfter: StorageOutage.retryAfterSeconds)
        case .invalidRecipient: APIError.badRequest("invalid_recipient", error.message)
        case .notOnWhatsApp: APIError(.notFound, "not_on_whatsapp", error.message)
        case .upstreamTimeout: APIError(.gatewayTimeout, "whatsapp_timeout", error.message)
        case .idempotencyKeyInUse: APIError(.conflict, "idempotency_key_in_use", error.message)
        }
    }

    /// Maps any failure by its type; unknown ones are the server's fault (503, logged by the middleware's caller).
    static func from(_ error: any Error) -> APIError {
        switch error {
        case let error as APIError: error
        case let error as AuthenticationError: from(error)
        case let error as SessionPoolError: from(error)
        case let error as TenancyError: from(error)
        case let error as RepositoryError where error.kind == .unavailable: storageUnavailable()
        default: APIError(.serviceUnavailable, "unavailable", "temporarily unavailable", retryAfter: StorageOutage.retryAfterSeconds)
        }
    }

    /// Maps a tenancy failure.
    static func from(_ error: TenancyError) -> APIError {
        switch error.kind {
        case .tenantExists: APIError(.conflict, "tenant_exists", "a tenant with this name exists")
        case .tenantNotFound: unknownTenant
        case .storage: storageUnavailable()
        case .hashing: APIError(.serviceUnavailable, "unavailable", "cannot hash the token right now")
        case .credentialsRemain: APIError(.conflict, "credentials_remain", error.description)
        case .invalidNumber: APIError.badRequest("invalid_mfa_number", error.description)
        case .mfaNotEnabled: APIError(.conflict, "mfa_not_enabled", error.description)
        case .rateLimited(let seconds):
            APIError(.tooManyRequests, "otp_rate_limited", error.description, retryAfter: seconds)
        }
    }
}

/// `{"error": {"code": "…", "message": "…"}}`.
private struct ErrorBody: Encodable {
    struct Detail: Encodable {
        let code: String
        let message: String
        let retryAfter: Int?
        enum CodingKeys: String, CodingKey {
            case code, message
            case retryAfter = "retry_after"
        }
    }
    let error: Detail
}

/// Turns every error that escapes a route into the JSON error shape, so no caller mistake becomes a bare 500.
struct JSONErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            throw error
        } catch let error as any HTTPResponseError {
            throw APIError(error.status, Self.code(for: error.status), Self.message(for: error.status))
        } catch let error as RepositoryError where error.kind == .unavailable {
            throw APIError.storageUnavailable()
        } catch is DecodingError {
            throw APIError.badRequest("invalid_json", "the request body is not the expected JSON")
        } catch {
            context.logger.error("unhandled error", metadata: ["error": "\(error)"])
            throw APIError(.internalServerError, "internal", "internal error")
        }
    }

    private static func code(for status: HTTPResponse.Status) -> String {
        switch status {
        case .notFound: "not_found"
        case .methodNotAllowed: "method_not_allowed"
        case .contentTooLarge: "body_too_large"
        case .badRequest: "bad_request"
        case .unsupportedMediaType: "unsupported_media_type"
        default: "http_\(status.code)"
        }
    }

    private static func message(for status: HTTPResponse.Status) -> String {
        switch status {
        case .notFound: "no such route"
        case .contentTooLarge: "the request body is too large"
        case .badRequest: "bad request"
        default: status.reasonPhrase
        }
    }
}

extension Request {
    /// Reads at most the context's upload limit (413 beyond it) and decodes JSON (400 `invalid_json` when it is not).
    func decodeJSON<T: Decodable>(as type: T.Type, context: AdminRequestContext, example: String) async throws -> T {
        let buffer: ByteBuffer
        do { buffer = try await body.collect(upTo: context.maxUploadSize) } catch {
            throw APIError(.contentTooLarge, "body_too_large", "the request body is larger than \(context.maxUploadSize) bytes")
        }
        do {
            return try JSONDecoder().decode(T.self, from: Data(buffer.readableBytesView))
        } catch let error as APIError {
            throw error
        } catch {
            throw APIError.badRequest("invalid_json", "the body must be a JSON object like \(example)")
        }
    }
}
