import Foundation

/// The lease-owner name of this process, held by an exclusive lock file in the data directory.
///
/// A process restarted on the same data directory gets the same name back (the kernel drops the dead process's
/// lock), so it reclaims its own stale leases at once; a second live process on the same directory gets
/// `<name>-2`, `<name>-3`, … and can never be mistaken for the first.
public final class NodeIdentity: Sendable {
    /// The node id leases are taken under.
    public let nodeID: String
    private let descriptor: Int32

    private init(nodeID: String, descriptor: Int32) {
        self.nodeID = nodeID
        self.descriptor = descriptor
    }

    deinit { close(descriptor) }

    /// Claims `requested` if given (failing when a live process holds it), else the first free `base`, `base-2`, ….
    public static func claim(dataDirectory: String, requested: String?, base: String) throws -> NodeIdentity {
        let directory = dataDirectory + "/nodes"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        if let requested {
            guard let identity = try lock(requested, in: directory) else {
                throw NodeIdentityError("node id '\(requested)' is in use by another live process on this data directory")
            }
            return identity
        }
        for index in 1...1000 {
            let candidate = index == 1 ? base : "\(base)-\(index)"
            if let identity = try lock(candidate, in: directory) { return identity }
        }
        throw NodeIdentityError("no free node id under '\(base)' in \(directory)")
    }

    private static func lock(_ nodeID: String, in directory: String) throws -> NodeIdentity? {
        let safe = String(nodeID.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." || $0 == "_" ? $0 : "_" })
        let path = directory + "/" + safe + ".lock"
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw NodeIdentityError("cannot open \(path): \(String(cString: strerror(errno)))") }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            close(descriptor)
            return nil
        }
        return NodeIdentity(nodeID: nodeID, descriptor: descriptor)
    }
}

/// The node id could not be claimed.
public struct NodeIdentityError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
