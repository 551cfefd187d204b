import Foundation

/// Everything `wahost` reads from flags and environment (DESIGN.md §3).
public struct WahostConfiguration: Sendable {
    /// Address to listen on.
    public var host: String
    /// Port to listen on.
    public var port: Int
    /// Holds `system.db` and `auth/`.
    public var dataDirectory: String
    /// `sqlite://…` or `postgres://…`; nil means `<data-dir>/system.db`.
    public var databaseURL: String?
    /// Names this process as a lease owner.
    public var nodeID: String
    /// Base64 master key from `WAHOST_MASTER_KEY`, if set.
    public var masterKeyBase64: String?

    public init(
        host: String = "127.0.0.1", port: Int = 8080, dataDirectory: String = ".", databaseURL: String? = nil,
        nodeID: String = WahostConfiguration.defaultNodeID(), masterKeyBase64: String? = nil
    ) {
        self.host = host
        self.port = port
        self.dataDirectory = dataDirectory
        self.databaseURL = databaseURL
        self.nodeID = nodeID
        self.masterKeyBase64 = masterKeyBase64
    }

    /// The `auth/` directory inside the data directory.
    public var authDirectory: String { dataDirectory + "/auth" }

    /// Hostname and process id.
    public static func defaultNodeID() -> String {
        "\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)"
    }
}
