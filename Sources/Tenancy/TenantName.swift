/// A validated tenant name: 1–64 characters of `[a-z0-9-]`, starting with a letter or digit.
public struct TenantName: Hashable, Sendable, Codable, CustomStringConvertible, Comparable {
    /// The name as text; safe to use as a directory name and in a URL path.
    public let rawValue: String

    /// The longest name accepted.
    public static let maximumLength = 64

    /// Validates `rawValue`, throwing `TenantNameError` with the reason when it is not a valid name.
    public init(_ rawValue: String) throws(TenantNameError) {
        guard !rawValue.isEmpty else { throw .empty }
        guard rawValue.utf8.count <= Self.maximumLength else { throw .tooLong(rawValue.utf8.count) }
        for byte in rawValue.utf8 {
            let allowed = (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
                || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "-")
            guard allowed else { throw .invalidCharacter }
        }
        guard rawValue.utf8.first != UInt8(ascii: "-") else { throw .leadingHyphen }
        self.rawValue = rawValue
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        try self.init(text)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }

    public var description: String { rawValue }

    public static func < (lhs: TenantName, rhs: TenantName) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// Why a string is not a valid tenant name.
public struct TenantNameError: Error, Equatable, CustomStringConvertible {
    private enum Reason: Equatable {
        case empty
        case tooLong(Int)
        case invalidCharacter
        case leadingHyphen
    }
    private let reason: Reason

    static let empty = TenantNameError(reason: .empty)
    static func tooLong(_ length: Int) -> TenantNameError { TenantNameError(reason: .tooLong(length)) }
    static let invalidCharacter = TenantNameError(reason: .invalidCharacter)
    static let leadingHyphen = TenantNameError(reason: .leadingHyphen)

    public var description: String {
        switch reason {
        case .empty: "tenant name is empty"
        case .tooLong(let length): "tenant name is \(length) characters long; at most \(TenantName.maximumLength) are allowed"
        case .invalidCharacter: "tenant name may contain only lowercase letters a-z, digits 0-9 and '-'"
        case .leadingHyphen: "tenant name must start with a letter or a digit"
        }
    }
}
