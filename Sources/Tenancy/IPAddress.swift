import Foundation

/// An IPv4 or IPv6 address as its 4 or 16 bytes; an IPv4-mapped IPv6 address is its IPv4 address.
public struct IPAddress: Hashable, Sendable, CustomStringConvertible {
    /// 4 bytes for IPv4, 16 for IPv6.
    public let bytes: [UInt8]

    /// Parses dotted IPv4 or IPv6 text (brackets and a `%zone` are dropped); nil for anything else.
    public init?(_ text: String) {
        var text = Substring(text.trimmingCharacters(in: .whitespaces))
        if text.hasPrefix("["), text.hasSuffix("]") { text = text.dropFirst().dropLast() }
        if let zone = text.firstIndex(of: "%") { text = text[..<zone] }
        guard !text.isEmpty, text.utf8.count <= 64 else { return nil }
        var v4 = in_addr()
        if inet_pton(AF_INET, String(text), &v4) == 1 {
            self.init(bytes: withUnsafeBytes(of: &v4) { Array($0) })
            return
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, String(text), &v6) == 1 else { return nil }
        self.init(ipv6Bytes: withUnsafeBytes(of: &v6) { Array($0) })
    }

    /// An IPv6 address from its 16 bytes; an IPv4-mapped one becomes its IPv4 address.
    package init(ipv6Bytes raw: [UInt8]) {
        bytes = raw.prefix(10).allSatisfy { $0 == 0 } && raw[10] == 0xFF && raw[11] == 0xFF ? Array(raw.suffix(4)) : raw
    }

    package init(bytes: [UInt8]) { self.bytes = bytes }

    /// True for IPv4.
    public var isIPv4: Bool { bytes.count == 4 }

    /// The key one client is counted under: the address for IPv4, its /64 for IPv6 (one subscriber's usual allocation).
    public var lockoutGroup: String {
        isIPv4 ? description : IPAddress(bytes: Array(bytes.prefix(8)) + Array(repeating: 0, count: 8)).description + "/64"
    }

    public var description: String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let family = isIPv4 ? AF_INET : AF_INET6
        let written = bytes.withUnsafeBytes { inet_ntop(family, $0.baseAddress, &buffer, socklen_t(buffer.count)) }
        guard written != nil else { return "?" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// An address range in CIDR notation (`10.0.0.0/8`, `fd00::/8`, or a single address).
public struct IPNetwork: Hashable, Sendable, CustomStringConvertible {
    /// The first address of the range.
    public let base: IPAddress
    /// The prefix length in bits.
    public let prefixLength: Int

    /// Parses `ADDRESS[/BITS]`; nil if the address or the prefix length is invalid.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPAddress(String(parts[0])) else { return nil }
        let maximum = address.bytes.count * 8
        let length = parts.count == 2 ? Int(parts[1]) : maximum
        guard let length, (0...maximum).contains(length) else { return nil }
        base = IPAddress(bytes: Self.mask(address.bytes, length))
        prefixLength = length
    }

    /// True if `address` is inside this range (an IPv4 address never matches an IPv6 range and vice versa).
    public func contains(_ address: IPAddress) -> Bool {
        address.bytes.count == base.bytes.count && Self.mask(address.bytes, prefixLength) == base.bytes
    }

    public var description: String { "\(base)/\(prefixLength)" }

    private static func mask(_ bytes: [UInt8], _ length: Int) -> [UInt8] {
        bytes.enumerated().map { index, byte in
            let bits = min(8, max(0, length - index * 8))
            return bits == 8 ? byte : byte & ~(UInt8(0xFF) >> bits)
        }
    }
}
