import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import SessionPool
import Tenancy

/// Relays a request for a session another node holds a live lease on to that node, signed, and streams its answer back.
// A request another node forwarded here is never forwarded again; server-sent events pass through as they are written.
struct OwnerForwardingMiddleware<Routing: SessionOwnerRouting>: RouterMiddleware {
    typealias Context = AdminRequestContext

    let pool: SessionPool
    let forwarding: NodeForwarding
    /// The route's own body limit: a larger body is refused here as the route would refuse it.
    let bodyLimit: Int
    /// Which tenant a request acts on, and the answer when its owner cannot be reached.
    let routing: Routing

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard context.forwardedBy == nil else { return try await next(request, context) }
        var request = request
        guard let tenant = try await routing.tenant(of: &request, context: context), let owner = await pool.owner(of: tenant), let url = owner.url
        else { return try await next(request, context) }
        return try await forward(&request, context, to: owner, at: url)
    }

    private func forward(_ request: inout Request, _ context: Context, to owner: SessionOwner, at url: String) async throws -> Response {
        let body: ByteBuffer
        do { body = try await request.collectBody(upTo: bodyLimit) } catch {
            throw APIError(.contentTooLarge, "body_too_large", "the request body is larger than \(bodyLimit) bytes")
        }
        let target = request.uri.description
        let facts = ForwardedRequestFacts(
            time: Int64(Date().timeIntervalSince1970.rounded(.down)), nodeID: forwarding.nodeID, method: request.method.rawValue, target: target,
            body: Array(body.readableBytesView), clientAddress: context.clientAddress)
        var outgoing = HTTPClientRequest(url: url + target)
        outgoing.method = HTTPMethod(rawValue: request.method.rawValue)
        let tokens = NodeForwarding.connectionTokens(request.headers)
        for field in request.headers where !NodeForwarding.isHopByHop(field.name, connectionTokens: tokens) {
            outgoing.headers.add(name: field.name.rawName, value: field.value)
        }
        // The owner sees the host the client asked for (the dashboard's origin check compares the two).
        if let authority = request.head.authority { outgoing.headers.add(name: "host", value: authority) }
        outgoing.headers.add(name: HTTPField.Name.wahostForwardedBy.rawName, value: facts.nodeID)
        outgoing.headers.add(name: HTTPField.Name.wahostForwardTime.rawName, value: String(facts.time))
        outgoing.headers.add(name: HTTPField.Name.wahostForwardClient.rawName, value: facts.clientAddress)
        outgoing.headers.add(name: HTTPField.Name.wahostForwardSignature.rawName, value: forwarding.key.signature(of: facts))
        if body.readableBytes > 0 { outgoing.body = .bytes(body) }
        let answer: HTTPClientResponse
        do { answer = try await NodeForwarding.client.execute(outgoing, deadline: .now() + NodeForwarding.answerTimeout, logger: context.logger) } catch
            let error as HTTPClientError where error == .invalidURL
        {
            throw APIError.badRequest("bad_request", "the request target cannot be forwarded")
        } catch {
            context.logger.warning("session owner unreachable", metadata: ["owner": "\(owner.nodeID)", "url": "\(url)", "error": "\(error)"])
            // The owner may be gone: its lease ends then, and the session moves to a live node soon after.
            let retryAfter = max(1, Int(owner.leaseExpiresAt.timeIntervalSinceNow.rounded(.up)) + 1)
            let error = APIError(
                .serviceUnavailable, "owner_unreachable", "the node running this session (\(owner.nodeID)) cannot be reached; try again",
                retryAfter: retryAfter)
            return try await routing.ownerUnreachable(error, owner: owner, request: request, context: context)
        }
        return Self.response(relaying: answer, from: owner.nodeID)
    }

    /// The owner's answer as this node's: status, end-to-end headers and the body, streamed as it arrives.
    private static func response(relaying answer: HTTPClientResponse, from node: String) -> Response {
        var headers = HTTPFields()
        let tokens = Set(answer.headers[canonicalForm: "connection"].map { $0.lowercased() })
        for header in answer.headers {
            // `date` and `server` are this node's to write.
            guard let name = HTTPField.Name(header.name), !NodeForwarding.isHopByHop(name, connectionTokens: tokens), name != .date, name != .server
            else { continue }
            headers.append(HTTPField(name: name, value: header.value))
        }
        headers[.wahostServedBy] = node
        let upstream = answer.body
        // Streamed, never buffered: an event stream runs until either side ends it or this server shuts down. A dropped
        // owner ends the answer; a dropped client or a shutdown ends the loop, and leaving the owner's body unread
        // closes that connection.
        return Response(
            status: HTTPResponse.Status(code: Int(answer.status.code), reasonPhrase: answer.status.reasonPhrase), headers: headers,
            body: ResponseBody { writer in
                do {
                    for try await chunk in upstream.cancelOnGracefulShutdown() { try await writer.write(chunk) }
                } catch {
                    // Either side went away mid-answer; what arrived was passed on.
                }
                try await writer.finish(nil)
            })
    }
}

/// How a family of routes names the tenant whose session a request acts on, and answers when that session's owner is unreachable.
protocol SessionOwnerRouting: Sendable {
    /// The tenant, or nil to answer here; may buffer the request's body (within the route's limit) to read it.
    func tenant(of request: inout Request, context: AdminRequestContext) async throws -> TenantName?
    /// The answer instead of `error` (503 `owner_unreachable`) when `owner` cannot be reached; `request` has its body buffered.
    func ownerUnreachable(_ error: APIError, owner: SessionOwner, request: Request, context: AdminRequestContext) async throws -> Response
}

/// The JSON API's routes: the tenant is the path's, else the one the token names (its shape, not yet verified), else `x-tenant`.
struct APISessionRouting: SessionOwnerRouting {
    func tenant(of request: inout Request, context: AdminRequestContext) async throws -> TenantName? {
        if let text = context.parameters.get("tenant") { return try? TenantName(text) }
        if let token = request.headers[.adminToken], let tenant = AdminToken.parse(token)?.tenant { return tenant }
        return request.headers[.tenant].flatMap { try? TenantName($0) }
    }

    func ownerUnreachable(_ error: APIError, owner: SessionOwner, request: Request, context: AdminRequestContext) async throws -> Response {
        throw error
    }
}
