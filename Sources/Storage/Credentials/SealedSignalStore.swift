import Crypto
import Foundation
import Tenancy
import WahostBasics
import WhatsApp

/// A tenant's Signal records in the system database rows (`sealed_records`), each sealed with AES-256-GCM under the
/// tenant's data key; the associated data binds a record to its tenant, tenant instance, kind and key, so a row moved
/// to another record, tenant or a re-created tenant of the same name fails to open.
public struct SealedSignalStore: SignalRecordStore {
    private let tenant: TenantName
    private let instanceID: String?
    private let key: SymmetricKey
    private let repository: any SealedRecordRepository & EventLogRepository
    /// Shares write transactions with other tenants' stores and events, in one queue, when given.
    private let writer: (any DurableWriter)?
    /// Fences writes with this node's lease on the tenant when given.
    private let fences: LeaseFences?
    /// Keeps recent records (sealed) while this node's lease on the tenant lasts, when given with `fences`.
    private let cache: SealedRecordCache?

    public init(
        tenant: TenantName, instanceID: String?, masterKey: MasterKey, repository: any SealedRecordRepository & EventLogRepository,
        writer: (any DurableWriter)? = nil,
        fences: LeaseFences? = nil, cache: SealedRecordCache? = nil
    ) {
        self.fences = fences
        self.tenant = tenant
        self.instanceID = instanceID
        self.key = masterKey.derivedKey(for: tenant, purpose: .signalStore, instanceID: instanceID)
        self.repository = repository
        self.writer = writer
        self.cache = cache
    }

    public func load(_ keys: [SignalRecordKey]) async throws -> [SignalRecordKey: [UInt8]] {
        let fence = fences?.fence(for: tenant)
        var byKind: [String: [(SignalRecordKey, String)]] = [:]
        for key in keys { if let (kind, name) = Self.rowKey(key) { byKind[kind, default: []].append((key, name)) } }
        let (cached, mark) = cache?.lookup(byKind.flatMap { kind, wanted in wanted.map { cacheKey(kind, $0.1) } }, fence: fence) ?? ([:], 0)
        var loaded: [SignalRecordKey: [UInt8]] = [:]
        var read: [SealedRecordCache.Key: [UInt8]?] = [:]
        for (kind, wanted) in byKind {
            var missing: [(SignalRecordKey, String)] = []
            for (recordKey, name) in wanted {
                guard let hit = cached[cacheKey(kind, name)] else {
                    missing.append((recordKey, name))
                    continue
                }
                if let sealed = hit { loaded[recordKey] = try open(sealed, kind: kind, name: name) }
            }
            guard !missing.isEmpty else { continue }
            let rows = try await repository.sealedRecords(of: tenant, kind: kind, keys: missing.map(\.1))
            for (recordKey, name) in missing {
                read[cacheKey(kind, name)] = rows[name]
                guard let sealed = rows[name] else { continue }
                loaded[recordKey] = try open(sealed, kind: kind, name: name)
            }
        }
        cache?.remember(read, loadedSince: mark, fence: fence)
        return loaded
    }

    public func submit(
        _ changes: [SignalRecordKey: [UInt8]?], with events: [InboxEvent], chain: WriteChain?,
        settled: @escaping @Sendable (Result<Void, any Error>) -> Void
    ) async throws {
        var rows: [SealedRecordChange] = []
        for (recordKey, bytes) in changes {
            guard let (kind, name) = Self.rowKey(recordKey) else { continue }
            rows.append(SealedRecordChange(kind: kind, key: name, sealed: try bytes.map { try seal($0, kind: kind, name: name) }))
        }
        let fence = fences?.fence(for: tenant)
        let write = SealedRecordWrite(tenant: tenant, changes: rows, fence: fence)
        let events = events.map { NewTenantEvent(tenant: tenant, type: $0.type, at: $0.at, data: $0.data, dedupeKey: $0.dedupeKey) }
        let (cache, keys) = (cache, rows.map { cacheKey($0.kind, $0.key) })
        let stored = Dictionary(rows.map { (cacheKey($0.kind, $0.key), $0.sealed) }, uniquingKeysWith: { $1 })
        let finish: @Sendable (Result<Void, RepositoryError>) -> Void = { result in
            switch result {
            case .success: cache?.stored(stored, fence: fence)
            case .failure: cache?.forget(keys)
            }
            settled(result.mapError { $0 as any Error })
        }
        if let writer { return writer.submit(write, with: events, chain: chain, settled: finish) }
        // Tools and tests: straight to the database.
        do {
            let outcome = try await repository.commit([DurableWrite(events: events, records: write)])[0]
            finish(outcome == nil ? .failure(.leaseLost(tenant)) : .success(()))
        } catch {
            finish(.failure(error))
        }
    }

    private func cacheKey(_ kind: String, _ name: String) -> SealedRecordCache.Key {
        SealedRecordCache.Key(tenant: tenant, instanceID: instanceID, kind: kind, name: name)
    }

    /// The row's kind and key for a record; nil for prekeys (kept with the device credentials).
    static func rowKey(_ key: SignalRecordKey) -> (kind: String, name: String)? {
        switch key {
        case .session(let address): ("session", address.description)
        case .identity(let address): ("identity", address.description)
        case .senderKey(let name): ("sender-key", name.description)
        case .phoneNumberOfLID(let user): ("lid-pn", user)
        case .preKey: nil
        }
    }

    private func associatedData(kind: String, name: String) -> [UInt8] {
        Array("wahost-signal-v1\u{0}\(tenant.rawValue)\u{0}\(instanceID ?? "")\u{0}\(kind)\u{0}\(name)".utf8)
    }

    private func seal(_ bytes: [UInt8], kind: String, name: String) throws -> [UInt8] {
        let box = try AES.GCM.seal(bytes, using: key, authenticating: associatedData(kind: kind, name: name))
        return Array(box.nonce) + Array(box.ciphertext) + Array(box.tag)
    }

    private func open(_ sealed: [UInt8], kind: String, name: String) throws -> [UInt8] {
        guard sealed.count >= 28 else { throw SealedSignalStoreError("\(kind) record \(name) of tenant \(tenant) is truncated") }
        do {
            let box = try AES.GCM.SealedBox(
                nonce: AES.GCM.Nonce(data: sealed.prefix(12)), ciphertext: sealed.dropFirst(12).dropLast(16), tag: sealed.suffix(16))
            return Array(try AES.GCM.open(box, using: key, authenticating: associatedData(kind: kind, name: name)))
        } catch {
            throw SealedSignalStoreError("\(kind) record \(name) of tenant \(tenant) failed authentication (moved, modified or another key)")
        }
    }
}

/// A sealed Signal record could not be opened.
public struct SealedSignalStoreError: Error, Sendable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
