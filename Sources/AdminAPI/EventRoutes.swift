import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import ServiceLifecycle
import SessionPool
import Tenancy

/// `GET /tenants/{tenant}/events` (and the alias `/session/events`): the tenant's durable event log, as server-sent
/// events that resume after `Last-Event-ID` (or `?after=N`), or as a JSON page with `Accept: application/json`.
struct EventRoutes {
    let dependencies: AdminAPIDependencies

    /// The largest JSON page, and the page size when `limit` is not given.
    static let maximumLimit = 1_000
    static let defaultLimit = 100
    /// An open stream reads the log at least this often (events written by another node wake no one here).
    static let pollInterval: Duration = .seconds(2)
    /// A comment keeps idle streams open through proxies.
    static let keepaliveInterval: Duration = .seconds(15)

    func register(on router: some RouterMethods<AdminRequestContext>) {
        router.get("tenants/:tenant/events") { request, context in try await events(request, context, fromPath: true) }
        router.get("session/events") { request, context in try await events(request, context, fromPath: false) }
    }

    private func events(_ request: Request, _ context: AdminRequestContext, fromPath: Bool) async throws -> Response {
        let tenant = try await SessionRoutes(dependencies: dependencies).authorize(request, context, fromPath: fromPath, otp: false)
        guard let log = dependencies.eventLog else { throw APIError(.notFound, "not_found", "no event log in this process") }
        let after = try Self.after(request)
        if request.headers[.accept]?.contains("application/json") == true {
            let limit = try Self.limit(request)
            let page: [StoredTenantEvent]
            do { page = try await log.page(of: tenant, after: after, limit: limit) } catch { throw APIError.from(error) }
            return Self.jsonPage(page, lastID: page.last?.id ?? after)
        }
        return stream(tenant, after: after, log: log)
    }

    private func stream(_ tenant: TenantName, after start: Int64, log: EventLogWriter) -> Response {
        let wakeups = log.wakeups(of: tenant)
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-store"
        return Response(
            status: .ok, headers: headers,
            body: ResponseBody { writer in
                var last = start
                var quiet: Duration = .zero
                let ticks = Self.ticks(wakeups)
                try await writer.write(ByteBuffer(string: ": wahost events of \(tenant)\n\n"))
                // The server's graceful shutdown ends the stream (the client resumes on another node with
                // Last-Event-ID); a stream whose client left unnoticed would otherwise hold the shutdown open.
                for await woke in ticks.cancelOnGracefulShutdown() {
                    while true {
                        let page = try await log.page(of: tenant, after: last, limit: Self.maximumLimit)
                        for event in page { try await writer.write(ByteBuffer(string: Self.sse(event))) }
                        last = page.last?.id ?? last
                        if page.count < Self.maximumLimit { break }
                    }
                    quiet = woke ? .zero : quiet + Self.pollInterval
                    if quiet >= Self.keepaliveInterval {
                        try await writer.write(ByteBuffer(string: ": keepalive\n\n"))
                        quiet = .zero
                    }
                }
                try await writer.finish(nil)
            })
    }

    /// `true` for each wake-up from this process's writer, `false` every poll interval; ends when the client goes.
    private static func ticks(_ wakeups: AsyncStream<Void>) -> AsyncStream<Bool> {
        let (stream, continuation) = AsyncStream.makeStream(of: Bool.self, bufferingPolicy: .bufferingNewest(1))
        continuation.yield(true)
        let waker = Task {
            for await _ in wakeups { continuation.yield(true) }
        }
        let poller = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: pollInterval)
                continuation.yield(false)
            }
        }
        continuation.onTermination = { _ in
            waker.cancel()
            poller.cancel()
        }
        return stream
    }

    static func sse(_ event: StoredTenantEvent) -> String {
        "id: \(event.id)\nevent: \(event.type)\ndata: \(event.data)\n\n"
    }

    static func jsonPage(_ events: [StoredTenantEvent], lastID: Int64) -> Response {
        // `data` is stored as JSON text and goes out as is.
        let items = events.map { event in
            #"{"id":\#(event.id),"type":"\#(event.type)","timestamp":\#(Int64(event.at.timeIntervalSince1970)),"data":\#(event.data)}"#
        }
        let body = #"{"events":[\#(items.joined(separator: ","))],"last_id":\#(lastID)}"#
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    private static func after(_ request: Request) throws -> Int64 {
        let text = request.headers[HTTPField.Name("last-event-id")!] ?? request.uri.queryParameters["after"].map(String.init)
        guard let text else { return 0 }
        guard let value = Int64(text), value >= 0 else { throw APIError.badRequest("after_invalid", "after (or Last-Event-ID) must be an event id, 0 or more") }
        return value
    }

    private static func limit(_ request: Request) throws -> Int {
        guard let text = request.uri.queryParameters["limit"] else { return defaultLimit }
        guard let value = Int(String(text)), (1...maximumLimit).contains(value) else {
            throw APIError.badRequest("limit_invalid", "limit must be 1 to \(maximumLimit)")
        }
        return value
    }
}
