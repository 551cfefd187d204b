// Typed reading of node attributes that gathers problems instead of throwing at each step.

/// Reads typed attribute values from a node and collects every problem in `errors`.
///
/// Required reads return a placeholder (`""`, `0`, `false`, `JID.empty`) when the attribute is
/// missing or malformed and record an error; optional reads return nil when it is missing and
/// record an error only when it is present but malformed. Call `check()` once at the end:
///
/// ```swift
/// var reader = node.attributeReader
/// let id = reader.string("id")
/// let from = reader.jid("from")
/// let count = reader.optionalInt("count")
/// try reader.check()
/// ```
public struct AttributeReader: Sendable {
    /// The tag of the node being read, used in error messages.
    public let tag: String
    /// The attributes being read.
    public let attributes: Attributes
    /// Every problem found so far, in the order of the reads.
    public private(set) var errors: [AttributeError] = []

    /// A reader over `node`'s attributes.
    public init(_ node: Node) {
        self.tag = node.tag
        self.attributes = node.attributes
    }

    /// True while no read has failed.
    public var isValid: Bool { errors.isEmpty }

    /// Throws the first recorded problem, if any (all of them are in `errors`).
    public func check() throws(AttributeError) {
        if let first = errors.first { throw first }
    }

    // MARK: Strings

    /// The value of `key` as text (a JID value in its textual form); `""` and an error when missing.
    public mutating func string(_ key: String) -> String {
        required(key, placeholder: "") { $0.description }
    }

    /// The value of `key` as text, or nil when missing.
    public mutating func optionalString(_ key: String) -> String? {
        attributes[key]?.description
    }

    // MARK: Integers

    /// The value of `key` as a decimal `Int`; 0 and an error when missing or malformed.
    public mutating func int(_ key: String) -> Int {
        required(key, placeholder: 0) { Self.integer($0) }
    }

    /// The value of `key` as a decimal `Int`, or nil when missing.
    public mutating func optionalInt(_ key: String) -> Int? {
        optional(key) { Self.integer($0) }
    }

    /// The value of `key` as a decimal `UInt64`; 0 and an error when missing or malformed.
    public mutating func uint64(_ key: String) -> UInt64 {
        required(key, placeholder: 0) { Self.integer($0) }
    }

    /// The value of `key` as a decimal `UInt64`, or nil when missing.
    public mutating func optionalUInt64(_ key: String) -> UInt64? {
        optional(key) { Self.integer($0) }
    }

    // MARK: Booleans

    /// The value of `key` as a boolean (`true`/`false`/`1`/`0`); false and an error when missing or malformed.
    public mutating func bool(_ key: String) -> Bool {
        required(key, placeholder: false) { Self.boolean($0) }
    }

    /// The value of `key` as a boolean (`true`/`false`/`1`/`0`), or nil when missing.
    public mutating func optionalBool(_ key: String) -> Bool? {
        optional(key) { Self.boolean($0) }
    }

    // MARK: JIDs

    /// The value of `key` as a JID (a JID value, or a string that parses as one); `JID.empty` and an error otherwise.
    public mutating func jid(_ key: String) -> JID {
        required(key, placeholder: .empty) { Self.jidValue($0) }
    }

    /// The value of `key` as a JID, or nil when missing.
    public mutating func optionalJID(_ key: String) -> JID? {
        optional(key) { Self.jidValue($0) }
    }

    // MARK: Helpers

    private mutating func required<T>(_ key: String, placeholder: T, _ convert: (AttributeValue) -> T?) -> T {
        guard let value = attributes[key] else {
            errors.append(AttributeError(.missing, key: key, tag: tag, value: nil))
            return placeholder
        }
        guard let converted = convert(value) else {
            errors.append(AttributeError(.malformed, key: key, tag: tag, value: value.description))
            return placeholder
        }
        return converted
    }

    private mutating func optional<T>(_ key: String, _ convert: (AttributeValue) -> T?) -> T? {
        guard let value = attributes[key] else { return nil }
        guard let converted = convert(value) else {
            errors.append(AttributeError(.malformed, key: key, tag: tag, value: value.description))
            return nil
        }
        return converted
    }

    private static func integer<T: FixedWidthInteger>(_ value: AttributeValue) -> T? {
        guard case .string(let text) = value, text.utf8.count <= 40 else { return nil }
        return T(text, radix: 10)
    }

    private static func boolean(_ value: AttributeValue) -> Bool? {
        switch value.string {
        case "true"?, "1"?: true
        case "false"?, "0"?: false
        default: nil
        }
    }

    private static func jidValue(_ value: AttributeValue) -> JID? {
        switch value {
        case .jid(let jid): jid
        case .string(let text): try? JID(parsing: text)
        }
    }
}

/// An attribute that a node lacks or that has the wrong form.
public struct AttributeError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What is wrong with the attribute.
    public struct Reason: Hashable, Sendable, CustomStringConvertible {
        private enum Value: String, Sendable {
            case missing
            case malformed
        }

        private let value: Value
        private init(_ value: Value) { self.value = value }

        /// `missing` or `malformed`.
        public var description: String { value.rawValue }

        /// A required attribute is absent.
        public static let missing = Reason(.missing)
        /// The attribute is present but is not of the requested type.
        public static let malformed = Reason(.malformed)
    }

    /// What is wrong.
    public let reason: Reason
    /// The attribute name.
    public let key: String
    /// The tag of the node that was read.
    public let tag: String
    /// The offending value as text, when there was one.
    public let value: String?

    init(_ reason: Reason, key: String, tag: String, value: String?) {
        self.reason = reason
        self.key = key
        self.tag = tag
        self.value = value
    }

    /// A message naming the node, the attribute and the problem.
    public var description: String {
        if let value { return "<\(tag)> attribute \(key)=\"\(value)\" is \(reason)" }
        return "<\(tag)> attribute \(key) is \(reason)"
    }
}
