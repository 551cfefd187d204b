import Foundation
import NIOSSL
import PostgresNIO

/// The parts of a `postgres://user:password@host:port/database?sslmode=…&sslrootcert=…` URL.
public struct PostgresURL: Sendable, Equatable {
    /// How the connection is protected, after libpq's `sslmode` names.
    public enum TLSMode: String, Sendable, Equatable, CaseIterable {
        /// Plain TCP; the default only for loopback hosts, otherwise only when written as `sslmode=disable`.
        case disable
        /// TLS without certificate checks (with `sslrootcert`, the chain is checked as for `verify-ca`).
        case require
        /// TLS with the server's chain checked against the trust roots, not its name.
        case verifyCA = "verify-ca"
        /// TLS with chain and host name checked; the default for every host that is not loopback.
        case verifyFull = "verify-full"
    }

    public var host: String
    public var port: Int
    public var username: String
    public var password: String?
    public var database: String
    /// The TLS mode: `sslmode` if given, else `verify-full` for remote hosts and `disable` for loopback ones.
    public var tlsMode: TLSMode
    /// A PEM file of trust roots (`sslrootcert`); nil uses the system's roots.
    public var rootCertificatePath: String?

    /// Parses a `postgres://` or `postgresql://` URL; throws naming what is wrong, never echoing the password.
    public init(_ text: String) throws(PostgresURLError) {
        guard let components = URLComponents(string: text), components.scheme == "postgres" || components.scheme == "postgresql"
        else { throw PostgresURLError("not a postgres:// URL") }
        guard let host = components.host, !host.isEmpty else { throw PostgresURLError("the PostgreSQL URL names no host") }
        self.host = host
        self.port = components.port ?? 5432
        // URLComponents' user and password are already percent-decoded; decoding again would turn "%2541" into "A".
        self.username = components.user.flatMap { $0.isEmpty ? nil : $0 } ?? "postgres"
        self.password = components.password
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        self.database = path.isEmpty ? self.username : path
        let items = components.queryItems ?? []
        for item in items where !["sslmode", "sslrootcert"].contains(item.name) {
            throw PostgresURLError("unsupported PostgreSQL URL parameter '\(item.name)'; wahost knows sslmode and sslrootcert")
        }
        if let written = items.first(where: { $0.name == "sslmode" })?.value {
            guard let mode = TLSMode(rawValue: written) else {
                throw PostgresURLError(
                    "unknown sslmode '\(written)'; use disable, require, verify-ca or verify-full (allow and prefer may fall back to plain text)")
            }
            self.tlsMode = mode
        } else {
            self.tlsMode = Self.isLoopback(host) ? .disable : .verifyFull
        }
        self.rootCertificatePath = items.first { $0.name == "sslrootcert" }?.value
        if rootCertificatePath != nil, tlsMode == .disable {
            throw PostgresURLError("sslrootcert needs sslmode=require, verify-ca or verify-full")
        }
    }

    /// The TLS configuration the connection must use, or nil for plain TCP (`disable`).
    public var clientTLSConfiguration: TLSConfiguration? {
        guard tlsMode != .disable else { return nil }
        var configuration = TLSConfiguration.makeClientConfiguration()
        if let rootCertificatePath { configuration.trustRoots = .file(rootCertificatePath) }
        switch tlsMode {
        case .disable, .verifyFull: configuration.certificateVerification = .fullVerification
        case .require: configuration.certificateVerification = rootCertificatePath == nil ? .none : .noHostnameVerification
        case .verifyCA: configuration.certificateVerification = .noHostnameVerification
        }
        return configuration
    }

    /// The postgres-nio TLS setting: TLS required (never `prefer`) unless the mode is `disable`.
    var clientTLS: PostgresClient.Configuration.TLS { clientTLSConfiguration.map { .require($0) } ?? .disable }

    /// True for `localhost` and loopback address literals, the only hosts where plain TCP is the default.
    static func isLoopback(_ host: String) -> Bool {
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        if bare.lowercased() == "localhost" || bare == "::1" { return true }
        let octets = bare.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets[0] == "127" && octets.allSatisfy { UInt8($0) != nil }
    }
}

/// A `postgres://` URL that wahost will not use; the message names the problem and never the password.
public struct PostgresURLError: Error, Sendable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
