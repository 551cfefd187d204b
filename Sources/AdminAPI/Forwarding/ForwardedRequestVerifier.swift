import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Tenancy

/// Believes forwarding headers only with a valid node signature (then the signed client counts); refuses them otherwise.
// A verified request is marked as forwarded, so it is never forwarded again.
struct ForwardedRequestVerifier: RouterMiddleware {
    typealias Context = AdminRequestContext

    /// Nil: this process takes no forwarded requests.
    let key: NodeForwardingKey?
    let audit: any AuditLogRepository
    /// A flood of forged requests writes a few audit rows, not one each.
    let failures = FailureAuditAggregator()
    /// The largest body any route takes (a forwarded body is read whole to check its digest).
    static let maximumBody = MessageRoutes.maximumBodyBytes

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard HTTPField.Name.wahostForwarding.contains(where: { request.headers[$0] != nil }) else { return try await next(request, context) }
        let claimed = request.headers[.wahostForwardedBy]
        guard let key, let claimed, let time = request.headers[.wahostForwardTime].flatMap({ Int64($0) }),
            let client = request.headers[.wahostForwardClient], client == "unknown" || IPAddress(client) != nil,
            let signature = request.headers[.wahostForwardSignature]
        else {
            throw await refuse(request, context, node: claimed, reason: key == nil ? "this node takes no forwarded requests" : "forwarding headers incomplete")
        }
        var request = request
        let body: ByteBuffer
        do { body = try await request.collectBody(upTo: Self.maximumBody) } catch {
            throw APIError(.contentTooLarge, "body_too_large", "the request body is larger than \(Self.maximumBody) bytes")
        }
        let facts = ForwardedRequestFacts(
            time: time, nodeID: claimed, method: request.method.rawValue, target: request.uri.description, body: Array(body.readableBytesView),
            clientAddress: client)
        guard key.verify(signature, of: facts, now: Date()) else {
            throw await refuse(request, context, node: claimed, reason: "signature invalid or outside ±\(NodeForwardingKey.allowedSkew) s")
        }
        var context = context
        context.clientAddress = client
        context.forwardedBy = claimed
        return try await next(request, context)
    }

    /// Logs and audits the refusal (folded per claimed node and peer); the error to answer with.
    private func refuse(_ request: Request, _ context: Context, node: String?, reason: String) async -> APIError {
        let actor = node.map { "node:" + String($0.prefix(64)) } ?? "anonymous"
        context.logger.warning(
            "forwarded request refused", metadata: ["peer": "\(context.clientAddress)", "claimed_node": "\(actor)", "reason": "\(reason)"])
        if case .write(let detail) = failures.record(key: actor + "\u{0}" + context.clientAddress, locking: false, now: Date()) {
            let text = detail.map { reason + "; " + $0 } ?? reason
            try? await audit.appendAudit(
                AuditEvent(at: Date(), actor: actor, action: "node.forward_forbidden", tenant: nil, clientAddress: context.clientAddress, detail: text))
        }
        return APIError(.forbidden, "forward_forbidden", "forwarding headers are only accepted from a node of this cluster with a valid signature")
    }
}
