import Foundation
import Tenancy

/// A webhook URL that passed the static rules: `http` or `https`, a host, no credentials, at most 2,048 bytes.
public struct WebhookURL: Sendable, Equatable, CustomStringConvertible {
    /// The URL as given (trimmed).
    public let text: String
    /// `http` or `https`.
    public let scheme: String
    /// The host name or address, without brackets.
    public let host: String
    /// The port, explicit or the scheme's.
    public let port: Int

    /// Checks the static rules; a literal address must not be forbidden (see ``ForbiddenAddresses``) unless `allowPrivate`.
    public init(_ raw: String, allowPrivate: Bool) throws(WebhookURLError) {
        let text = raw.trimmingCharacters(in: .whitespaces)
        guard !text.isEmpty, text.utf8.count <= 2048 else { throw WebhookURLError(.invalid, "url must be 1 to 2,048 bytes") }
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased(), ["http", "https"].contains(scheme)
        else { throw WebhookURLError(.invalid, "url must be an http:// or https:// URL") }
        guard components.user == nil, components.password == nil else {
            throw WebhookURLError(.invalid, "url must not carry credentials; the signature authenticates wahost")
        }
        var host = components.host ?? ""
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host.hasSuffix(".") { host.removeLast() }
        guard !host.isEmpty else { throw WebhookURLError(.invalid, "url must name a host") }
        let port = components.port ?? (scheme == "https" ? 443 : 80)
        guard (1...65535).contains(port) else { throw WebhookURLError(.invalid, "url port must be 1 to 65535") }
        self.scheme = scheme
        self.host = host.lowercased()
        self.port = port
        // The request goes to the URL rebuilt with the normalised host, so the host the HTTP client connects to is
        // exactly the one whose addresses were checked (and pinned).
        var rebuilt = components
        if IPAddress(self.host) == nil { rebuilt.host = self.host }
        guard let normalised = rebuilt.string else { throw WebhookURLError(.invalid, "url cannot be normalised") }
        self.text = normalised
        // A name is checked by what it resolves to (`localhost` included), when configured and again on every delivery.
        if !allowPrivate, let address = IPAddress(self.host) { try ForbiddenAddresses.check(address) }
    }

    public var description: String { text }
}

/// Address classes a webhook may not reach without `--allow-private-webhooks`: loopback, private, link-local (cloud
/// metadata lives there), unique-local, carrier-grade NAT, unspecified, multicast and broadcast.
public enum ForbiddenAddresses {
    static let networks: [IPNetwork] = [
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24",
        "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4",
        "::/128", "::1/128", "64:ff9b::/96", "100::/64", "fc00::/7", "fe80::/10", "ff00::/8",
    ].compactMap(IPNetwork.init)

    /// Throws `.forbidden` if `address` is in a forbidden class.
    public static func check(_ address: IPAddress) throws(WebhookURLError) {
        if let network = networks.first(where: { $0.contains(address) }) {
            throw WebhookURLError(.forbidden, "url resolves to \(address), in \(network), which webhooks may not reach")
        }
    }
}

/// Why a webhook URL was refused.
public struct WebhookURLError: Error, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// Not a usable http(s) URL.
        case invalid
        /// It names or resolves to a forbidden address (`webhook_url_forbidden`).
        case forbidden
        /// Its host name does not resolve.
        case unresolvable
    }

    public let kind: Kind
    public let description: String

    public init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }
}
