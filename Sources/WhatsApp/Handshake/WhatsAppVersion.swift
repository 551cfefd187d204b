import Crypto

/// The WhatsApp Web version a client announces; WhatsApp refuses outdated ones with `<failure reason="405">`.
public struct WhatsAppVersion: Sendable, Codable, Hashable, CustomStringConvertible {
    /// First component (2).
    public var primary: UInt32
    /// Second component (3000).
    public var secondary: UInt32
    /// Third component, the client revision.
    public var tertiary: UInt32

    public init(primary: UInt32, secondary: UInt32, tertiary: UInt32) {
        self.primary = primary
        self.secondary = secondary
        self.tertiary = tertiary
    }

    /// Parses `"2.3000.1045649367"`; nil for anything else.
    public init?(_ text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let primary = UInt32(parts[0]), let secondary = UInt32(parts[1]), let tertiary = UInt32(parts[2]) else {
            return nil
        }
        self.init(primary: primary, secondary: secondary, tertiary: tertiary)
    }

    /// The version announced unless configured otherwise (`WAHOST_WA_VERSION`).
    public static let `default` = WhatsAppVersion(primary: 2, secondary: 3000, tertiary: 1_045_649_367)

    /// Dotted form, e.g. `2.3000.1045649367`.
    public var description: String { "\(primary).\(secondary).\(tertiary)" }

    /// MD5 of the dotted form: the registration payload's `buildHash`, which must track the announced version.
    public var buildHash: [UInt8] { Array(Insecure.MD5.hash(data: Array(description.utf8))) }
}
