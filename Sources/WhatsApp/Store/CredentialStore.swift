import Foundation

/// Where a companion's credentials live; implemented by the storage layer.
public protocol CredentialStore: Sendable {
    /// The stored credentials, or nil when none were saved yet.
    func load() async throws -> DeviceCredentials?
    /// Replaces the stored credentials durably.
    func save(_ credentials: DeviceCredentials) async throws
    /// Adds one-time prekeys (with their private halves) durably, before their public halves are uploaded.
    func savePreKeys(_ preKeys: [PreKey]) async throws
    /// Deletes the stored credentials and prekeys (after logout or `device_removed`).
    func wipe() async throws
}
