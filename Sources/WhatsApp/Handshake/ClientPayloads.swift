import Foundation
import SwiftProtobuf
import WAProto

/// The key material a registration payload announces (all public).
public struct RegistrationKeys: Sendable, Equatable {
    /// Signal registration id, sent as 4 big-endian bytes.
    public var registrationID: UInt32
    /// Identity public key, 32 bytes.
    public var identityPublicKey: [UInt8]
    /// Signed prekey id, sent as 3 big-endian bytes.
    public var signedPreKeyID: UInt32
    /// Signed prekey public key, 32 bytes.
    public var signedPreKeyPublicKey: [UInt8]
    /// XEdDSA signature over `0x05 || signedPreKeyPublicKey` by the identity key, 64 bytes.
    public var signedPreKeySignature: [UInt8]

    public init(
        registrationID: UInt32, identityPublicKey: [UInt8], signedPreKeyID: UInt32, signedPreKeyPublicKey: [UInt8],
        signedPreKeySignature: [UInt8]
    ) {
        self.registrationID = registrationID
        self.identityPublicKey = identityPublicKey
        self.signedPreKeyID = signedPreKeyID
        self.signedPreKeyPublicKey = signedPreKeyPublicKey
        self.signedPreKeySignature = signedPreKeySignature
    }
}

/// Builds the ClientPayload sent inside the Noise ClientFinish (docs/protocol-notes.md#client-payload).
public enum ClientPayloads {
    /// The name WhatsApp shows for this linked device (DeviceProps.os).
    public static let defaultDeviceName = "wahost"

    /// Payload for a device that is not paired yet: announces its keys, `passive = false`, `pull = false`.
    public static func registration(keys: RegistrationKeys, version: WhatsAppVersion, deviceName: String = defaultDeviceName)
        -> Wa_ClientPayload
    {
        var payload = common(version: version)
        payload.passive = false
        payload.pull = false
        var pairing = Wa_ClientPayload.DevicePairingRegistrationData()
        pairing.eRegid = Data(bigEndianBytes(keys.registrationID, count: 4))
        pairing.eKeytype = Data([0x05])
        pairing.eIdent = Data(keys.identityPublicKey)
        pairing.eSkeyID = Data(bigEndianBytes(keys.signedPreKeyID, count: 3))
        pairing.eSkeyVal = Data(keys.signedPreKeyPublicKey)
        pairing.eSkeySig = Data(keys.signedPreKeySignature)
        pairing.buildHash = Data(version.buildHash)
        var props = Wa_DeviceProps()
        props.os = deviceName
        var propsVersion = Wa_DeviceProps.AppVersion()
        propsVersion.primary = 0
        propsVersion.secondary = 1
        propsVersion.tertiary = 0
        props.version = propsVersion
        props.platformType = .unknown
        props.requireFullSync = false
        // Serializing a message with only set scalar fields cannot fail.
        pairing.deviceProps = (try? props.serializedData()) ?? Data()
        payload.devicePairingData = pairing
        return payload
    }

    /// Payload for a paired device logging in as `user:device`: `passive = true`, `pull = true`, no key material.
    public static func login(user: UInt64, device: UInt32, version: WhatsAppVersion) -> Wa_ClientPayload {
        var payload = common(version: version)
        payload.username = user
        payload.device = device
        payload.passive = true
        payload.pull = true
        payload.lidDbMigrated = true
        payload.lc = 1
        return payload
    }

    private static func common(version: WhatsAppVersion) -> Wa_ClientPayload {
        var appVersion = Wa_ClientPayload.UserAgent.AppVersion()
        appVersion.primary = version.primary
        appVersion.secondary = version.secondary
        appVersion.tertiary = version.tertiary
        var userAgent = Wa_ClientPayload.UserAgent()
        userAgent.platform = .web
        userAgent.appVersion = appVersion
        userAgent.mcc = "000"
        userAgent.mnc = "000"
        userAgent.osVersion = "0.1"
        userAgent.manufacturer = ""
        userAgent.device = "Desktop"
        userAgent.osBuildNumber = "0.1"
        userAgent.releaseChannel = .release
        userAgent.localeLanguageIso6391 = "en"
        userAgent.localeCountryIso31661Alpha2 = "US"
        var webInfo = Wa_ClientPayload.WebInfo()
        webInfo.webSubPlatform = .webBrowser
        var payload = Wa_ClientPayload()
        payload.userAgent = userAgent
        payload.webInfo = webInfo
        payload.connectType = .wifiUnknown
        payload.connectReason = .userActivated
        return payload
    }

    static func bigEndianBytes(_ value: UInt32, count: Int) -> [UInt8] {
        (0..<count).reversed().map { UInt8(truncatingIfNeeded: value >> (8 * UInt32($0))) }
    }
}
