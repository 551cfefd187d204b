import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import Tenancy
import WahostBasics

/// What one delivery attempt came to.
public enum WebhookOutcome: Sendable, Equatable {
    /// The receiver answered 2xx.
    case delivered
    /// Anything else; the text says what (status, timeout, refused, forbidden address), never the body or the secret.
    case failed(String)
}

/// Posts webhook requests. Unless private addresses are allowed it resolves the host itself, refuses every forbidden
/// address, and connects to the address it checked (TLS still verifies the host name), so a DNS answer that changes
/// between the check and the connection cannot point a delivery inside the network. Redirects are not followed.
public actor WebhookSender {
    private let allowPrivate: Bool
    private let timeout: Duration
    private let direct: HTTPClient
    /// Clients pinned to a checked address, by `host|address`; dropped together when there are too many.
    private var pinned: [String: HTTPClient] = [:]
    private static let maximumPinned = 256
    /// Address lookups run here, for the process's life, not on NIO's shared pool: a slow resolver cannot hold up the
    /// rest of the process, and lookups left past their deadline occupy at most these threads.
    private static let lookups: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: 8)
        pool.start()
        return pool
    }()
    /// A lookup not answered by then fails the attempt.
    static let lookupDeadline: Duration = .seconds(5)

    public init(allowPrivate: Bool, timeout: Duration) {
        self.allowPrivate = allowPrivate
        self.timeout = timeout
        direct = HTTPClient(eventLoopGroupProvider: .singleton, configuration: Self.configuration(dnsOverride: [:]))
    }

    /// Sends `request` to `url`; `.delivered` only for a 2xx whose answer, body included, came within the timeout.
    public func post(_ request: WebhookRequest, to url: WebhookURL) async -> WebhookOutcome {
        let client: HTTPClient
        do { client = try await self.client(for: url) } catch { return .failed(error.description) }
        var outgoing = HTTPClientRequest(url: url.text)
        outgoing.method = .POST
        for (name, value) in request.headers { outgoing.headers.add(name: name, value: value) }
        outgoing.body = .bytes(ByteBuffer(bytes: request.body))
        let (timeout, prepared) = (self.timeout, outgoing)
        // The client's deadline ends at the answer's head; a body trickled slowly would outlast it, so the whole
        // exchange runs under one deadline (a delivery must end within its turn's claim).
        return await withTaskGroup(of: WebhookOutcome?.self) { group in
            group.addTask {
                do {
                    let response = try await client.execute(prepared, timeout: .milliseconds(timeout.wholeMilliseconds))
                    _ = try? await response.body.collect(upTo: 64 * 1024)
                    return (200..<300).contains(Int(response.status.code)) ? .delivered : .failed("HTTP \(response.status.code)")
                } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout || error == .cancelled {
                    return nil
                } catch {
                    return .failed(Self.describe(error))
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first ?? .failed("no answer within \(timeout.components.seconds) s")
        }
    }

    /// Closes every connection.
    public func shutdown() async {
        for client in pinned.values { try? await client.shutdown() }
        pinned = [:]
        try? await direct.shutdown()
    }

    private func client(for url: WebhookURL) async throws(WebhookURLError) -> HTTPClient {
        if let address = IPAddress(url.host) {
            // A literal address stored while private ones were allowed is checked again now.
            if !allowPrivate { try ForbiddenAddresses.check(address) }
            return direct
        }
        if allowPrivate { return direct }
        let addresses = try await Self.resolve(url.host, port: url.port)
        for address in addresses { try ForbiddenAddresses.check(address) }
        let chosen = addresses[0].description
        let key = url.host + "|" + chosen
        if let client = pinned[key] { return client }
        if pinned.count >= Self.maximumPinned {
            // Requests may still be in flight on the dropped clients: close them once every one has timed out.
            let old = Array(pinned.values)
            pinned = [:]
            let grace = timeout + .seconds(5)
            Task {
                try? await Task.sleep(for: grace)
                for client in old { try? await client.shutdown() }
            }
        }
        var overrides = [url.host: chosen]
        if let seen = URL(string: url.text)?.host, seen != url.host { overrides[seen] = chosen }
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: Self.configuration(dnsOverride: overrides))
        pinned[key] = client
        return client
    }

    private static func configuration(dnsOverride: [String: String]) -> HTTPClient.Configuration {
        var configuration = HTTPClient.Configuration(
            redirectConfiguration: .disallow, timeout: .init(connect: .seconds(5), read: .seconds(10)))
        configuration.dnsOverride = dnsOverride
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)
        return configuration
    }

    /// Every address `host` resolves to (getaddrinfo on the lookup threads), or an error after `deadline`.
    static func resolve(_ host: String, port: Int, deadline: Duration = lookupDeadline) async throws(WebhookURLError) -> [IPAddress] {
        // getaddrinfo cannot be cancelled: after the deadline the lookup is left to finish on its thread, unwaited.
        let waiter = LookupWaiter()
        let result: [IPAddress]?
        do {
            result = try await withCheckedThrowingContinuation { continuation in
                waiter.set(continuation)
                let timer = Task {
                    try await Task.sleep(for: deadline)
                    waiter.finish(.failure(WebhookURLError(.unresolvable, "no answer within \(deadline.components.seconds) s")))
                }
                Task {
                    do { waiter.finish(.success(try await lookUp(host, port: port))) } catch { waiter.finish(.failure(error)) }
                    timer.cancel()
                }
            }
        } catch {
            throw WebhookURLError(.unresolvable, "cannot resolve \(host): \(error)")
        }
        guard let result, !result.isEmpty else { throw WebhookURLError(.unresolvable, "\(host) does not resolve") }
        return result
    }

    private static func lookUp(_ host: String, port: Int) async throws -> [IPAddress]? {
        try await lookups.runIfActive { () -> [IPAddress]? in
                var hints = addrinfo()
                hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
                var list: UnsafeMutablePointer<addrinfo>?
                guard getaddrinfo(host, String(port), &hints, &list) == 0, let first = list else { return nil }
                defer { freeaddrinfo(first) }
                var addresses: [IPAddress] = []
                var cursor: UnsafeMutablePointer<addrinfo>? = first
                while let info = cursor {
                    if info.pointee.ai_family == AF_INET, let raw = info.pointee.ai_addr {
                        let address = raw.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
                        addresses.append(IPAddress(bytes: withUnsafeBytes(of: address) { Array($0) }))
                    } else if info.pointee.ai_family == AF_INET6, let raw = info.pointee.ai_addr {
                        let address = raw.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
                        addresses.append(IPAddress(ipv6Bytes: withUnsafeBytes(of: address) { Array($0) }))
                    }
                    cursor = info.pointee.ai_next
                }
                return addresses
        }
    }

    private static func describe(_ error: any Error) -> String {
        if let error = error as? NIOConnectionError { return "cannot connect: \(error.connectionErrors.first.map { "\($0.error)" } ?? "\(error)")" }
        if let error = error as? ChannelError, case .connectTimeout = error { return "connect timed out" }
        let text = "\(error)"
        return text.count > 200 ? String(text.prefix(200)) : text
    }
}

/// Resumes a lookup's waiter once: with the answer or with the deadline, whichever comes first.
private final class LookupWaiter: Sendable {
    private let continuation = Mutex<CheckedContinuation<[IPAddress]?, any Error>?>(nil)

    func set(_ waiting: CheckedContinuation<[IPAddress]?, any Error>) { continuation.withLock { $0 = waiting } }

    func finish(_ result: Result<[IPAddress]?, any Error>) { continuation.withLock { $0.take() }?.resume(with: result) }
}
