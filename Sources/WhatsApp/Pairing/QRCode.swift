// The pairing QR code text and the schedule on which its refs rotate (docs/protocol-notes.md#qr-code-text, #qr-ref-schedule).

import Foundation

/// The companion's web-client type, sent as the QR code's last field and as `companion_platform_id`.
public struct CompanionPlatformID: RawRepresentable, Hashable, Sendable, Codable, ExpressibleByStringLiteral {
    /// The wire value: a decimal digit, or `c` / `e`.
    public let rawValue: String

    /// A platform id from its wire value.
    public init(rawValue: String) {
        self.rawValue = rawValue
    }

    /// A platform id from a literal such as `"1"`.
    public init(stringLiteral value: String) {
        self.rawValue = value
    }

    /// UNKNOWN.
    public static let unknown: Self = "0"
    /// CHROME (Baileys' default).
    public static let chrome: Self = "1"
    /// EDGE.
    public static let edge: Self = "2"
    /// FIREFOX.
    public static let firefox: Self = "3"
    /// IE.
    public static let internetExplorer: Self = "4"
    /// OPERA.
    public static let opera: Self = "5"
    /// SAFARI.
    public static let safari: Self = "6"
    /// ELECTRON (desktop app outside Windows).
    public static let electron: Self = "7"
    /// UWP (desktop app on Windows).
    public static let uwp: Self = "8"
    /// OTHER_WEB_CLIENT (whatsmeow's default).
    public static let otherWebClient: Self = "9"
    /// macOS desktop (whatsmeow only).
    public static let macOS: Self = "c"
    /// Android (whatsmeow only).
    public static let android: Self = "e"
}

/// The text a pairing QR code encodes: `https://wa.me/settings/linked_devices#ref,noise,identity,adv,platform` (docs/protocol-notes.md#qr-code-text).
///
/// Keys are standard padded base64 (RFC 4648 §4) of the raw 32 bytes; the ref is used verbatim.
/// `description` hides the keys; `text` is what goes into the QR image.
public struct PairingQRCode: Hashable, Sendable {
    /// The fixed prefix of the current QR format.
    public static let prefix = "https://wa.me/settings/linked_devices#"

    /// One ref from the server's `pair-device` request, verbatim.
    public var ref: String
    /// The companion's 32-byte Noise static public key.
    public var noisePublicKey: [UInt8]
    /// The companion's 32-byte identity public key (no 0x05 prefix).
    public var identityPublicKey: [UInt8]
    /// The companion's 32-byte ADV secret.
    public var advSecretKey: [UInt8]
    /// The companion's web-client type.
    public var platformID: CompanionPlatformID

    /// A QR code from its parts.
    public init(ref: String, noisePublicKey: [UInt8], identityPublicKey: [UInt8], advSecretKey: [UInt8], platformID: CompanionPlatformID) {
        self.ref = ref
        self.noisePublicKey = noisePublicKey
        self.identityPublicKey = identityPublicKey
        self.advSecretKey = advSecretKey
        self.platformID = platformID
    }

    /// The QR code that shows `ref` for the companion holding `credentials`.
    public init(ref: String, credentials: DeviceCredentials, platformID: CompanionPlatformID) {
        self.init(
            ref: ref,
            noisePublicKey: credentials.noiseKey.publicKey,
            identityPublicKey: credentials.identityKey.publicKey,
            advSecretKey: credentials.advSecretKey,
            platformID: platformID
        )
    }

    /// The text to render as the QR image.
    public var text: String {
        Self.prefix + [ref, Self.base64(noisePublicKey), Self.base64(identityPublicKey), Self.base64(advSecretKey), platformID.rawValue]
            .joined(separator: ",")
    }

    private static func base64(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString()
    }
}

extension PairingQRCode: CustomStringConvertible, CustomDebugStringConvertible {
    /// A summary without the ref or keys.
    public var description: String { "PairingQRCode(platform: \(platformID.rawValue), ref and keys redacted)" }

    /// The same as `description`.
    public var debugDescription: String { description }
}

/// Which ref of one `pair-device` list to show at a given time: the first for 60 s, each later one for 20 s (docs/protocol-notes.md#qr-ref-schedule).
///
/// A new `pair-device` request replaces the list; start a new schedule from its arrival.
public struct QRRefSchedule: Hashable, Sendable {
    /// What to show at a moment.
    public enum Slot: Hashable, Sendable {
        /// Show `refs[index]` for `remaining` more time.
        case show(index: Int, ref: String, remaining: Duration)
        /// Every ref has expired: give up (whatsmeow disconnects, Baileys closes with 408) and reconnect with the same keys for new refs.
        case exhausted
    }

    /// The refs in the order the server sent them.
    public let refs: [String]
    /// How long the first ref is shown.
    public let firstRefLifetime: Duration
    /// How long each later ref is shown.
    public let laterRefLifetime: Duration

    /// The schedule of `refs`, with the reference libraries' 60 s and 20 s lifetimes by default; negative lifetimes count as zero.
    public init(refs: [String], firstRefLifetime: Duration = .seconds(60), laterRefLifetime: Duration = .seconds(20)) {
        self.refs = refs
        self.firstRefLifetime = max(firstRefLifetime, .zero)
        self.laterRefLifetime = max(laterRefLifetime, .zero)
    }

    /// The time from the schedule's start until the last ref expires (160 s for 6 refs).
    public var totalLifetime: Duration {
        refs.isEmpty ? .zero : firstRefLifetime + laterRefLifetime * (refs.count - 1)
    }

    /// When `refs[index]` starts being shown, measured from the schedule's start; nil past the end.
    public func start(ofRefAt index: Int) -> Duration? {
        guard refs.indices.contains(index) else { return nil }
        return index == 0 ? .zero : firstRefLifetime + laterRefLifetime * (index - 1)
    }

    /// The ref to show `elapsed` after the schedule's start; a negative `elapsed` counts as zero.
    public func slot(at elapsed: Duration) -> Slot {
        let elapsed = max(elapsed, .zero)
        guard !refs.isEmpty, elapsed < totalLifetime else { return .exhausted }
        if elapsed < firstRefLifetime {
            return .show(index: 0, ref: refs[0], remaining: firstRefLifetime - elapsed)
        }
        let intoLater = elapsed - firstRefLifetime
        let laterIndex = Int(intoLater / laterRefLifetime)
        let index = min(1 + laterIndex, refs.count - 1)
        guard let start = start(ofRefAt: index) else { return .exhausted }
        return .show(index: index, ref: refs[index], remaining: start + laterRefLifetime - elapsed)
    }
}
