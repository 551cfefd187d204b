import WABinary

/// What a client learned while sending, kept so the next send skips the round trips: device lists, group members,
/// and the devices that already hold our sender key per group. Bounded; empty until the account sends, so idle
/// sessions pay nothing. Server notifications (`devices`, `w:gp2`) drop what they change.
struct SendCaches {
    /// At most this many accounts' device lists, and this many groups.
    static let deviceListLimit = 256
    static let groupLimit = 64
    /// A device list older than this is asked for again.
    static let deviceListLifetime: Duration = .seconds(3600)

    private var deviceLists: [JID: (devices: [JID], fetchedAt: ContinuousClock.Instant)] = [:]
    private var groupMembers: [JID: [JID]] = [:]
    private var senderKeyHolders: [JID: Set<JID>] = [:]

    /// The cached device lists of `users` still fresh at `now`, and the users to ask for.
    func deviceLists(of users: [JID], now: ContinuousClock.Instant) -> (known: [JID: [JID]], missing: [JID]) {
        var known: [JID: [JID]] = [:]
        var missing: [JID] = []
        for user in users {
            if let entry = deviceLists[user], now - entry.fetchedAt < Self.deviceListLifetime { known[user] = entry.devices } else { missing.append(user) }
        }
        return (known, missing)
    }

    mutating func store(deviceLists lists: [JID: [JID]], at now: ContinuousClock.Instant) {
        for (user, devices) in lists { deviceLists[user] = (devices, now) }
        if deviceLists.count > Self.deviceListLimit {
            let oldest = deviceLists.sorted { $0.value.fetchedAt < $1.value.fetchedAt }.prefix(deviceLists.count - Self.deviceListLimit)
            for (user, _) in oldest { deviceLists[user] = nil }
        }
    }

    func members(of group: JID) -> [JID]? { groupMembers[group] }

    mutating func store(members: [JID: [JID]]) {
        for (group, list) in members { groupMembers[group] = list }
        while groupMembers.count > Self.groupLimit, let any = groupMembers.keys.first { groupMembers[any] = nil }
    }

    /// The devices known to hold our sender key for `group`.
    func holders(of group: JID) -> Set<JID> { senderKeyHolders[group] ?? [] }

    mutating func addHolders(_ devices: [JID], of group: JID) {
        senderKeyHolders[group, default: []].formUnion(devices)
        while senderKeyHolders.count > Self.groupLimit, let any = senderKeyHolders.keys.first(where: { $0 != group }) { senderKeyHolders[any] = nil }
    }

    /// Our sender key for `group` is new (or its record is gone): no device holds it yet.
    mutating func forgetHolders(of group: JID) { senderKeyHolders[group] = nil }

    /// An account's devices changed (a `devices` notification).
    mutating func devicesChanged(of user: JID) { deviceLists[user.withoutDevice] = nil }

    /// A group's members or settings changed (a `w:gp2` notification): its members are asked for again.
    mutating func groupChanged(_ group: JID) { groupMembers[group] = nil }
}
