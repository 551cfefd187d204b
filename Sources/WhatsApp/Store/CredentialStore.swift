import Foundation

/// Where a companion's credentials live; implemented by the storage layer.
public protocol CredentialStore: Sendable {
    /// The stored credentials, or nil when none were saved yet.
    func load() async throws -> DeviceCredentials?
    /// Replaces the stored credentials durably.
    func save(_ credentials: DeviceCredentials) async throws
    /// Adds one-time prekeys (with their private halves) durably, before their public halves are uploaded.
    func savePreKeys(_ preKeys: [PreKey]) async throws
    /// The stored one-time prekeys, with their private halves (Signal needs them to open a `pkmsg`).
    func loadPreKeys() async throws -> [PreKey]
    /// The stored one-time prekeys with these ids (a `pkmsg` names one); stores may read less than all of them.
    func loadPreKeys(ids: Set<UInt32>) async throws -> [PreKey]
    /// Deletes one-time prekeys a `pkmsg` used up, durably, so none is accepted twice.
    func removePreKeys(_ ids: Set<UInt32>) async throws
    /// Deletes the stored credentials and prekeys (after logout or `device_removed`).
    func wipe() async throws
}

extension CredentialStore {
    /// The stored one-time prekeys with these ids (those that are left); stores may read less than all of them.
    public func loadPreKeys(ids: Set<UInt32>) async throws -> [PreKey] {
        try await loadPreKeys().filter { ids.contains($0.id) }
    }
}
