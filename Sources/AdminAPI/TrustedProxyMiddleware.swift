import HTTPTypes
import Hummingbird
import Tenancy

/// Takes the client address from `X-Forwarded-For` when, and only when, the peer is a trusted proxy.
struct TrustedProxyMiddleware: RouterMiddleware {
    typealias Context = AdminRequestContext

    /// The proxies whose `X-Forwarded-For` is believed.
    let trusted: [IPNetwork]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard !trusted.isEmpty else { return try await next(request, context) }
        var context = context
        context.clientAddress = Self.clientAddress(
            peer: context.clientAddress, forwardedFor: request.headers[values: .xForwardedFor], trusted: trusted)
        return try await next(request, context)
    }

    /// Walks the chain from the nearest hop back and stops at the first address no trusted proxy stands for.
    static func clientAddress(peer: String, forwardedFor: [String], trusted: [IPNetwork]) -> String {
        guard let peerAddress = IPAddress(peer), trusted.contains(where: { $0.contains(peerAddress) }) else { return peer }
        var client = peerAddress
        let hops = forwardedFor.flatMap { $0.split(separator: ",") }.map { String($0) }
        for hop in hops.reversed() {
            // A hop that is not an address was written by someone we do not trust: the last proxy's view stands.
            guard let address = IPAddress(hop) else { break }
            client = address
            if !trusted.contains(where: { $0.contains(address) }) { break }
        }
        return client.description
    }
}

extension HTTPField.Name {
    /// `X-Forwarded-For`: the client chain a reverse proxy saw.
    static let xForwardedFor = HTTPField.Name("x-forwarded-for")!
}
