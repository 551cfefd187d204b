import Synchronization
import Tenancy
import WahostBasics
import WhatsApp

/// The Signal record port for one tenant, sealed under the tenant's current row: its instance id is read per operation
/// (so records of an earlier tenant of the same name never open, and a deleted tenant's are not written), or once per
/// lease of this node on the tenant when writes are fenced (a deleted tenant's lease and rows are gone, so its writes
/// fail in the database; a tenant created again under the name gets a new pool entry and store).
public struct TenantSignalStore: SignalRecordStore {
    private let tenant: TenantName
    private let masterKey: MasterKey
    private let repository: any SealedRecordRepository & EventLogRepository
    private let tenantRow: @Sendable () async throws -> Tenant?
    private let writer: (any DurableWriter)?
    private let fences: LeaseFences?
    private let cache: SealedRecordCache?
    /// The sealed store (instance id and derived key) for the lease it was made under.
    private let current = Current()

    private final class Current: Sendable {
        let store = Mutex<(fence: LeaseFence, store: SealedSignalStore)?>(nil)
    }

    public init(
        tenant: TenantName, masterKey: MasterKey, repository: any SealedRecordRepository & EventLogRepository, writer: (any DurableWriter)? = nil,
        fences: LeaseFences? = nil, cache: SealedRecordCache? = nil, tenantRow: @escaping @Sendable () async throws -> Tenant?
    ) {
        self.fences = fences
        self.tenant = tenant
        self.masterKey = masterKey
        self.repository = repository
        self.writer = writer
        self.cache = cache
        self.tenantRow = tenantRow
    }

    public func load(_ keys: [SignalRecordKey]) async throws -> [SignalRecordKey: [UInt8]] {
        try await sealed().load(keys)
    }

    public func submit(
        _ changes: [SignalRecordKey: [UInt8]?], with events: [InboxEvent], chain: WriteChain?,
        settled: @escaping @Sendable (Result<Void, any Error>) -> Void
    ) async throws {
        try await sealed().submit(changes, with: events, chain: chain, settled: settled)
    }

    private func sealed() async throws -> SealedSignalStore {
        let fence = fences?.fence(for: tenant)
        if let fence, case .holder = fence, let kept = current.store.withLock({ $0 }), kept.fence == fence { return kept.store }
        guard let row = try await tenantRow() else {
            throw CredentialStoreError(.tenantGone, "tenant '\(tenant)' no longer exists; its Signal records are not used")
        }
        let store = SealedSignalStore(
            tenant: tenant, instanceID: row.instanceID, masterKey: masterKey, repository: repository, writer: writer, fences: fences, cache: cache)
        if let fence, case .holder = fence { current.store.withLock { $0 = (fence, store) } }
        return store
    }
}
