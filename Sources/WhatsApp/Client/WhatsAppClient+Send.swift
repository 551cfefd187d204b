import Foundation
import Logging
import WABinary

/// A sent message as the server acknowledged it.
public struct SentMessage: Sendable, Equatable {
    public var id: String
    /// The chat it went to: an account (without device) or a group.
    public var to: JID
    /// The server's time for it, unix seconds.
    public var timestamp: UInt64
}

/// Sending texts: device lists by usync, sessions from fetched bundles, one payload per device (and a copy for our
/// own other devices), the Signal state stored before the stanza leaves, the server's ack awaited.
extension WhatsAppClient {
    /// Sends `text` to an account or a group and returns once the server acked it; `id` reuses a message id.
    public func sendText(_ text: String, to chat: JID, id: String? = nil) async throws -> SentMessage {
        guard let number = connection?.number, connection?.machine.loggedIn == true else { throw WhatsAppClientError.notLoggedIn }
        var generator = SystemRandomNumberGenerator()
        let messageID = id ?? MessageStanzas.newMessageID(using: &generator)
        // Requests first, without the Signal state: the read loop needs the state for what arrives, and it is the read
        // loop that delivers the answers. The state is free again before the ack is awaited, for the same reason.
        let plan = try await sendPlan(to: chat, on: number)
        await acquireSignalState()
        let node: Node
        let keyHolders: [JID]
        do {
            (node, keyHolders) = try await encryptedText(text, plan: plan, id: messageID)
            releaseSignalState()
        } catch {
            releaseSignalState()
            throw error
        }
        recentSends.removeAll { $0.id == messageID }
        recentSends.append((messageID, chat.withoutDevice, text))
        if recentSends.count > Self.recentSendLimit { recentSends.removeFirst() }
        let ack = try await awaitAck(of: node, id: messageID, on: number)
        if let error = ack.attributes["error"]?.string { throw WhatsAppClientError.serverError(Int(error) ?? 0, "message refused") }
        if chat.isGroup { sendCaches.addHolders(keyHolders, of: chat.withoutDevice) }
        let timestamp = ack.attributes["t"]?.string.flatMap(UInt64.init) ?? UInt64(Date().timeIntervalSince1970)
        return SentMessage(id: messageID, to: chat.withoutDevice, timestamp: timestamp)
    }

    /// Who a send goes to, learned by requests made without the Signal state: the devices, and the bundles of those
    /// that need a payload and had no session when asked.
    struct SendPlan {
        var target: JID
        var devices: [JID]
        var bundles: [JID: SignalPreKeyBundle]
    }

    private func sendPlan(to chat: JID, on number: UInt64) async throws -> SendPlan {
        guard let messaging, let own = credentials?.pairedAccount?.jid else { throw WhatsAppClientError.notLoggedIn }
        let target = chat.withoutDevice
        let members = chat.isGroup ? try await participants(of: target, except: own) : [target]
        let lists = try await deviceLists(of: members + [own.withoutDevice], on: number)
        let recipients = members.flatMap { lists[$0.withoutDevice] ?? [] }
        if !chat.isGroup, recipients.isEmpty { throw WhatsAppClientError.notOnWhatsApp(target.description) }
        let devices = recipients + (lists[own.withoutDevice] ?? []).filter { $0.device != own.device }
        let holders = chat.isGroup ? sendCaches.holders(of: target) : []
        let needPayload = devices.filter { !holders.contains($0) }
        let known = try await loadSignalRecords(needPayload.map { .session($0.signalAddress) }, from: messaging.signalStore)
        let withoutSession = needPayload.filter { known[.session($0.signalAddress)] == nil }
        let bundles = withoutSession.isEmpty ? [:] : try await preKeyBundles(for: withoutSession)
        return SendPlan(target: target, devices: devices, bundles: bundles)
    }

    /// The message stanza for `text`, encrypted for every device of the plan, and the devices it hands our group
    /// sender key to; the Signal state it changed is stored before it returns. Makes no request.
    private func encryptedText(_ text: String, plan: SendPlan, id messageID: String) async throws -> (Node, keyHolders: [JID]) {
        guard let messaging, let account = credentials?.pairedAccount, let credentials else { throw WhatsAppClientError.notLoggedIn }
        var generator = SystemRandomNumberGenerator()
        let own = account.jid
        let (target, devices, bundles) = (plan.target, plan.devices, plan.bundles)
        let isGroup = target.isGroup
        let senderKey = SenderKeyName(groupID: target.description, sender: own.signalAddress)
        var keys = devices.flatMap { [SignalRecordKey.session($0.signalAddress), .identity($0.signalAddress)] }
        if isGroup { keys.append(.senderKey(senderKey)) }
        var records = SignalRecords(identity: credentials.identityKey, registrationID: credentials.registrationID, signedPreKey: credentials.signedPreKey)
        records.merge(loaded: try await loadSignalRecords(keys, from: messaging.signalStore))
        // A group's devices that hold our current sender key need no payload of their own.
        if isGroup, records.senderKeys[senderKey] == nil { sendCaches.forgetHolders(of: target) }
        let holders = isGroup ? sendCaches.holders(of: target) : []
        let needPayload = devices.filter { !holders.contains($0) }
        // A device the server has no bundle for cannot be reached now (whatsmeow and Baileys skip it too).
        let reachable = needPayload.filter { records.sessions[$0.signalAddress] != nil || bundles[$0] != nil }
        if reachable.count < needPayload.count {
            logger.warning("devices without a session or prekey bundle skipped", metadata: ["count": "\(needPayload.count - reachable.count)"])
        }
        let signal = try SignalProtocol(records: records)
        let node: Node
        do {
            if isGroup {
                let sealed = try OutboundEncryption.group(
                    text, to: target, from: own, needsSenderKey: reachable, bundles: bundles, with: signal, using: &generator)
                node = MessageStanzas.fanOut(
                    id: messageID, to: target, payloads: sealed.keyPayloads, groupPayload: sealed.groupPayload,
                    participantHash: MessageStanzas.participantHash(devices), deviceIdentity: account.account)
            } else {
                let payloads = try OutboundEncryption.oneToOne(
                    text, to: target, recipientDevices: reachable.filter { $0.user != own.user }, ownDevices: reachable.filter { $0.user == own.user },
                    bundles: bundles, with: signal, using: &generator)
                node = MessageStanzas.fanOut(id: messageID, to: target, payloads: payloads, deviceIdentity: account.account)
            }
        } catch {
            throw WhatsAppClientError.encryption("\(error)")
        }
        // Stored before the stanza leaves: a crash after the send must not reuse a message key.
        try await saveSignalState(signal.records.pendingRecordChanges, to: messaging.signalStore)
        return (node, isGroup ? reachable : [])
    }

    /// How many sent texts are kept for early retry receipts.
    static var recentSendLimit: Int { 16 }

    /// The devices of `users`: cached lists, the rest by usync.
    private func deviceLists(of users: [JID], on number: UInt64) async throws -> [JID: [JID]] {
        let now = ContinuousClock.now
        var (lists, missing) = sendCaches.deviceLists(of: users, now: now)
        guard !missing.isEmpty else { return lists }
        let response = try await request(on: number) { DeviceListStanzas.request(id: $0, users: missing) }
        let fetched: [JID: [JID]]
        do { fetched = try DeviceListStanzas.parse(response) } catch { throw WhatsAppClientError.malformedResponse(error.description) }
        sendCaches.store(deviceLists: fetched, at: now)
        lists.merge(fetched) { $1 }
        return lists
    }

    /// The members of a group we are in, without our own account (cached; the group list is fetched when unknown).
    private func participants(of group: JID, except own: JID) async throws -> [JID] {
        if sendCaches.members(of: group) == nil {
            var members: [JID: [JID]] = [:]
            for found in try await groups() {
                guard let id = try? JID(parsing: found.id) else { continue }
                members[id] = found.participants.compactMap { try? JID(parsing: $0) }.map(\.withoutDevice)
            }
            sendCaches.store(members: members)
            guard members[group] != nil else { throw WhatsAppClientError.notOnWhatsApp("group \(group)") }
            return members[group, default: []].filter { $0.user != own.user }
        }
        return (sendCaches.members(of: group) ?? []).filter { $0.user != own.user }
    }

    /// Sends a message stanza and waits for the server's `<ack class="message">` of its id.
    private func awaitAck(of node: Node, id: String, on number: UInt64) async throws -> Node {
        guard var connection, connection.number == number, connection.machine.closing == nil else { throw WhatsAppClientError.disconnected }
        connection.machine.expectAck(of: id)
        self.connection = connection
        return try await send(requestWithID: id, node: node)
    }
}
