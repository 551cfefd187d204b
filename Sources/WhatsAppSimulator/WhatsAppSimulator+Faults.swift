import WABinary

/// A kind of client request the simulator can be told to leave unanswered (`hold`), to stop a client mid-request.
public enum SimulatedRequest: String, Sendable, CaseIterable {
    case preKeyCount = "prekey_count"
    case preKeyUpload = "prekey_upload"
    case ping
    case deviceList = "device_list"

    init?(_ node: Node) {
        switch node.attributes["xmlns"]?.string {
        case "w:p": self = .ping
        case "usync": self = .deviceList
        case "encrypt" where node.child("count") != nil: self = .preKeyCount
        case "encrypt" where node.child("list") != nil: self = .preKeyUpload
        default: return nil
        }
    }
}

/// How the server ends an account's connections for good.
public enum SimulatedTermination: Sendable {
    /// `<stream:error><conflict type="replaced"/>`: another companion logged in with the same credentials.
    case replaced
    /// `401 device_removed`: the phone unlinked the companion, which is forgotten.
    case deviceRemoved
}

/// Faults armed by tests, owned by the simulator actor.
struct SimulatorFaults {
    var held: Set<SimulatedRequest> = []
    var heldNodes: [(kind: SimulatedRequest, connection: UInt64, node: Node)] = []
    var onLogin: [String: SimulatedTermination] = [:]
    var stalledLogins: Set<String> = []
}

// MARK: - Fault injection

extension WhatsAppSimulator {
    /// Leaves every request of `kind` unanswered from now until `release(_:)`.
    public func hold(_ kind: SimulatedRequest) {
        faults.held.insert(kind)
    }

    /// Stops holding `kind` and answers the held requests whose connection is still open, in arrival order.
    public func release(_ kind: SimulatedRequest) async {
        faults.held.remove(kind)
        let released = faults.heldNodes.filter { $0.kind == kind }
        faults.heldNodes.removeAll { $0.kind == kind }
        for held in released where connections[held.connection] != nil {
            guard let iqID = held.node.attributes["id"]?.string else { continue }
            await answer(held.node, iqID: iqID, from: held.connection)
        }
    }

    /// Ends every live connection of `user` now, the way `termination` says.
    public func terminate(_ user: String, with termination: SimulatedTermination) async {
        switch termination {
        case .replaced: await sendStreamError(toAccount: user, code: nil, conflict: "replaced")
        case .deviceRemoved: await removeDevice(ofAccount: user)
        }
    }

    /// Ends the next login of `user` right after its `<success>`, before any of its requests is answered.
    public func terminateNextLogin(of user: String, with termination: SimulatedTermination) {
        faults.onLogin[user] = termination
    }

    /// The next login of `user` gets no answer after the handshake (no `<success>`) and its connection is stalled.
    public func stallNextLogin(of user: String) {
        faults.stalledLogins.insert(user)
    }

    /// Disarms a stall `stallNextLogin` armed that no login met yet.
    public func cancelLoginStall(of user: String) {
        faults.stalledLogins.remove(user)
    }

    /// Sends `<stream:error>` to every live connection of `user` (e.g. code 515, 503, or a conflict) and closes them;
    /// returns how many.
    @discardableResult
    public func sendStreamError(toAccount user: String, code: Int?, conflict: String? = nil) async -> Int {
        var attributes: Attributes = [:]
        if let code { attributes["code"] = .string(String(code)) }
        let children = conflict.map { [Node(tag: "conflict", attributes: ["type": .string($0)])] } ?? []
        let ids = liveConnectionIDs(of: user)
        for id in ids {
            send(Node(tag: "stream:error", attributes: attributes, children: children), to: id)
            await drop(id)
        }
        return ids.count
    }

    /// The phone unlinks the companion: `401 device_removed`, and the device is forgotten.
    public func removeDevice(ofAccount user: String) async {
        removeAccounts(ofUser: user)
        await sendStreamError(toAccount: user, code: 401, conflict: "device_removed")
    }

    /// Closes every connection of `user` without a word (a network drop); returns how many.
    @discardableResult
    public func dropConnections(ofAccount user: String) async -> Int {
        let ids = liveConnectionIDs(of: user)
        for id in ids { await drop(id) }
        return ids.count
    }

    /// While silent, the account's pings get no answer (a dead server as the client sees it).
    public func setSilent(_ silent: Bool, account user: String) {
        if silent { silentAccounts.insert(user) } else { silentAccounts.remove(user) }
    }

    /// Contacts used up all but `remaining` of the account's prekeys: the server says so with an `encrypt` notification.
    public func consumePreKeys(ofAccount user: String, leaving remaining: Int) {
        counters.preKeys[user] = remaining
        // Handed out oldest first, as `takeUnusedPreKey` does: the newest `remaining` are left.
        if let unused = uploadedKeys[user]?.unused { uploadedKeys[user]?.unused = Array(unused.suffix(remaining)) }
        let notification = Node(
            tag: "notification", attributes: ["from": .jid(.whatsappServer), "id": .string(nextIQID()), "type": "encrypt", "t": "1700000000"],
            children: [Node(tag: "count", attributes: ["value": .string(String(remaining))])])
        for id in liveConnectionIDs(of: user) { send(notification, to: id) }
    }

}
