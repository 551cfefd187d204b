import WahostBasics

/// Where an account's Signal sessions, remote identities and sender keys are kept; implemented by the storage layer.
/// Our own identity, signed prekey and one-time prekeys live with the device credentials (`CredentialStore`).
public protocol SignalRecordStore: Sendable {
    /// The stored bytes of those of `keys` that exist (sessions, identities and sender keys; prekeys are not here).
    func load(_ keys: [SignalRecordKey]) async throws -> [SignalRecordKey: [UInt8]]
    /// Queues a write (bytes) and delete (nil) of records with `events` for the account's event log, stored in one
    /// transaction, all or none (an event whose dedupe key the log holds is skipped), after every save queued before
    /// it; returns once queued, and `settled` is told once it is durable or failed. Once a save of `chain` failed the
    /// later ones fail unwritten. Throws (nothing queued) when the write cannot be prepared.
    func submit(
        _ changes: [SignalRecordKey: [UInt8]?], with events: [InboxEvent], chain: WriteChain?,
        settled: @escaping @Sendable (Result<Void, any Error>) -> Void) async throws
}

extension SignalRecordStore {
    /// Writes records and appends `events` durably in one transaction, all or none; returns once durable.
    public func save(_ changes: [SignalRecordKey: [UInt8]?], with events: [InboxEvent] = [], chain: WriteChain? = nil) async throws {
        let (outcome, settle) = AsyncStream.makeStream(of: Result<Void, any Error>.self, bufferingPolicy: .bufferingNewest(1))
        try await submit(changes, with: events, chain: chain) { result in
            settle.yield(result)
            settle.finish()
        }
        for await result in outcome { try result.get() }
    }
}

extension SignalRecords {
    /// The writes and deletes of sessions, identities and sender keys since `changed` was last cleared, ready for
    /// `SignalRecordStore.save` (used-up prekeys are the credential store's to delete).
    public var pendingRecordChanges: [SignalRecordKey: [UInt8]?] {
        var changes: [SignalRecordKey: [UInt8]?] = [:]
        for key in changed {
            switch key {
            case .session(let address): changes[key] = .some(sessions[address])
            case .identity(let address): changes[key] = .some(identities[address])
            case .senderKey(let name): changes[key] = .some(senderKeys[name])
            case .preKey, .phoneNumberOfLID: continue
            }
        }
        return changes
    }

    /// One-time prekeys used up since `changed` was last cleared (for `CredentialStore.removePreKeys`).
    public var consumedPreKeyIDs: Set<UInt32> {
        Set(changed.compactMap { key -> UInt32? in
            guard case .preKey(let id) = key, preKeys[id] == nil else { return nil }
            return id
        })
    }

    /// Adds records read from the store (a session, identity or sender key not in memory yet).
    public mutating func merge(loaded: [SignalRecordKey: [UInt8]]) {
        for (key, bytes) in loaded {
            switch key {
            case .session(let address): sessions[address] = bytes
            case .identity(let address): identities[address] = bytes
            case .senderKey(let name): senderKeys[name] = bytes
            case .preKey, .phoneNumberOfLID: continue
            }
        }
    }
}
