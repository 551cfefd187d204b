import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import SessionPool
import Tenancy
import WahostBasics

/// `POST /tenants/{tenant}/messages` (and the alias `/session/messages`): sends a text from the tenant's account and
/// answers 201 once WhatsApp acknowledged it; `Idempotency-Key` makes a repeat return the first answer.
struct MessageRoutes {
    let dependencies: AdminAPIDependencies

    /// The longest `Idempotency-Key`.
    static let maximumKeyLength = 128
    /// A body may hold the longest text with JSON escapes.
    static let maximumBodyBytes = 512 * 1024

    struct SendRequest: Decodable {
        let to: String?
        let text: String?
    }

    func register(on router: some RouterMethods<AdminRequestContext>) {
        router.post("tenants/:tenant/messages") { request, context in try await send(request, context, fromPath: true) }
        router.post("session/messages") { request, context in try await send(request, context, fromPath: false) }
    }

    private func send(_ request: Request, _ context: AdminRequestContext, fromPath: Bool) async throws -> Response {
        let tenant = try await SessionRoutes(dependencies: dependencies).authorize(request, context, fromPath: fromPath, otp: false)
        let key = request.headers[.idempotencyKey]
        if let key, key.isEmpty || key.count > Self.maximumKeyLength {
            throw APIError.badRequest("invalid_idempotency_key", "Idempotency-Key must be 1 to \(Self.maximumKeyLength) characters")
        }
        let body = try await Self.decode(request)
        let sent = try await SessionActions(dependencies: dependencies).sendText(tenant, to: body.to ?? "", text: body.text ?? "", idempotencyKey: key)
        return JSONBody.object([
            "id": .string(sent.id), "to": .string(sent.to), "timestamp": .int(Int(clamping: sent.timestamp)), "status": .string("sent"),
        ]).response(status: .created)
    }

    /// The body as a send request; a body that is not UTF-8 is refused as `invalid_text`.
    private static func decode(_ request: Request) async throws -> SendRequest {
        let buffer: ByteBuffer
        do { buffer = try await request.body.collect(upTo: maximumBodyBytes) } catch {
            throw APIError(.contentTooLarge, "body_too_large", "the request body is larger than \(maximumBodyBytes) bytes")
        }
        let bytes = Array(buffer.readableBytesView)
        guard String(validating: bytes, as: UTF8.self) != nil else { throw APIError.badRequest("invalid_text", "the body is not UTF-8") }
        do { return try JSONDecoder().decode(SendRequest.self, from: Data(bytes)) } catch {
            throw APIError.badRequest("invalid_json", #"the body must be a JSON object like {"to": "15551234567", "text": "hello"}"#)
        }
    }
}

extension HTTPField.Name {
    /// `Idempotency-Key`: a repeated send with the same key returns the first answer.
    static let idempotencyKey = HTTPField.Name("Idempotency-Key")!
}
