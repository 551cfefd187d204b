import Tenancy
import WhatsApp

/// The Signal record port for one tenant, sealed under the tenant's current row (its instance id is read per
/// operation, so records of an earlier tenant of the same name never open, and a deleted tenant's are not written).
public struct TenantSignalStore: SignalRecordStore {
    private let tenant: TenantName
    private let masterKey: MasterKey
    private let repository: any SealedRecordRepository
    private let tenantRow: @Sendable () async throws -> Tenant?
    private let writer: SealedRecordWriter?
    private let fences: LeaseFences?

    public init(
        tenant: TenantName, masterKey: MasterKey, repository: any SealedRecordRepository, writer: SealedRecordWriter? = nil,
        fences: LeaseFences? = nil, tenantRow: @escaping @Sendable () async throws -> Tenant?
    ) {
        self.fences = fences
        self.tenant = tenant
        self.masterKey = masterKey
        self.repository = repository
        self.writer = writer
        self.tenantRow = tenantRow
    }

    public func load(_ keys: [SignalRecordKey]) async throws -> [SignalRecordKey: [UInt8]] {
        try await sealed().load(keys)
    }

    public func save(_ changes: [SignalRecordKey: [UInt8]?]) async throws {
        try await sealed().save(changes)
    }

    private func sealed() async throws -> SealedSignalStore {
        guard let row = try await tenantRow() else {
            throw CredentialStoreError(.tenantGone, "tenant '\(tenant)' no longer exists; its Signal records are not used")
        }
        return SealedSignalStore(tenant: tenant, instanceID: row.instanceID, masterKey: masterKey, repository: repository, writer: writer, fences: fences)
    }
}
