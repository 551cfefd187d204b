import Testing
import WABinary

@testable import WhatsApp

/// The client's stanza handling on its own: no socket, no store, no timers.
@Suite struct ConnectionMachineTests {
    static let account = JID.phoneNumber("15551000001", device: 1)
    static let replaced = Node(tag: "stream:error", children: [Node(tag: "conflict", attributes: ["type": "replaced"])])
    static let deviceRemoved = Node(
        tag: "stream:error", attributes: ["code": "401"], children: [Node(tag: "conflict", attributes: ["type": "device_removed"])])
    static let restart = Node(tag: "stream:error", attributes: ["code": "515"])
    static let success = Node(tag: "success", attributes: ["t": "1700000000"])

    static func result(_ id: String) -> Node {
        Node(tag: "iq", attributes: ["id": .string(id), "type": "result", "from": .jid(.whatsappServer)])
    }

    static func lowPreKeys(_ count: Int) -> Node {
        Node(
            tag: "notification", attributes: ["id": "n1", "type": "encrypt", "from": .jid(.whatsappServer), "t": "1"],
            children: [Node(tag: "count", attributes: ["value": .string(String(count))])])
    }

    static func loggedIn() -> ConnectionMachine {
        var machine = ConnectionMachine(ids: IQIDGenerator(prefix: "t"))
        _ = machine.received(success, account: account)
        return machine
    }

    @Test func successLogsInSetsActiveChecksPreKeysAndArmsTheKeepalive() {
        var machine = ConnectionMachine(ids: IQIDGenerator(prefix: "t"))
        let actions = machine.received(Self.success, account: Self.account)
        #expect(actions == [
            .send(Stanzas.setActive(id: "t-1")), .emit(.loggedIn(jid: Self.account.description)), .checkPreKeys, .armKeepalive,
        ])
        #expect(machine.loggedIn)
        #expect(machine.received(Self.success, account: Self.account).isEmpty, "a second success changes nothing")
    }

    @Test func successOnARegistrationConnectionIsIgnored() {
        var machine = ConnectionMachine()
        #expect(machine.received(Self.success, account: nil).isEmpty)
        #expect(!machine.loggedIn)
    }

    @Test func answersGoToTheirRequestAndUnknownIdsAreDropped() {
        var machine = Self.loggedIn()
        let id = machine.nextRequestID()
        #expect(machine.received(Self.result(id), account: Self.account) == [.answer(id: id, Self.result(id))])
        #expect(machine.received(Self.result(id), account: Self.account).isEmpty, "answered once")
        #expect(machine.received(Self.result("t-99"), account: Self.account).isEmpty)
        let timedOut = machine.nextRequestID()
        machine.forget(timedOut)
        #expect(machine.received(Self.result(timedOut), account: Self.account).isEmpty, "a late answer after a timeout")
    }

    @Test func serverPingsAreAnsweredAndPairingRequestsGoToPairing() {
        var machine = Self.loggedIn()
        let ping = Node(tag: "iq", attributes: ["id": "s1", "type": "get", "xmlns": "urn:xmpp:ping", "from": .jid(.whatsappServer)])
        #expect(machine.received(ping, account: Self.account) == [.send(Stanzas.iqResult(answering: ping)!)])
        let pairDevice = Node(tag: "iq", attributes: ["id": "s2", "type": "set"], children: [Node(tag: "pair-device")])
        #expect(machine.received(pairDevice, account: nil) == [.pairing(pairDevice)])
    }

    @Test func messagesAndReceiptsAreHandedOverUnacked() {
        var machine = Self.loggedIn()
        let message = Node(tag: "message", attributes: ["id": "M1", "from": "15557770001@s.whatsapp.net", "t": "1700000000"])
        #expect(machine.received(message, account: Self.account) == [.receiveMessage(message)], "no ack before the message is stored")
        let receipt = Node(tag: "receipt", attributes: ["id": "M2", "from": "15557770001@s.whatsapp.net"])
        #expect(machine.received(receipt, account: Self.account) == [.receiveReceipt(receipt)], "acked once stored")
        let call = Node(tag: "call", attributes: ["id": "C1", "from": "15557770001@s.whatsapp.net"])
        #expect(machine.received(call, account: Self.account) == [.send(Stanzas.ack(for: call)!)])
    }

    @Test func aLowPreKeyNotificationAsksForARefillAndIsAcked() {
        var machine = Self.loggedIn()
        let actions = machine.received(Self.lowPreKeys(3), account: Self.account)
        #expect(actions.first == .uploadPreKeys(count: PreKeyPolicy.refillBatch))
        #expect(actions.count == 2, "then the ack")
        #expect(machine.received(Self.lowPreKeys(PreKeyPolicy.minimumOnServer), account: Self.account).count == 1, "only the ack")
        #expect(PreKeyPolicy.batch(serverHolds: 0) == PreKeyPolicy.initialBatch)
        #expect(PreKeyPolicy.batch(serverHolds: 4) == PreKeyPolicy.refillBatch)
        #expect(PreKeyPolicy.batch(serverHolds: 5) == nil)
    }

    @Test(arguments: [
        (replaced, [ConnectionMachine.Action.close(.replaced)]),
        (deviceRemoved, [.wipeCredentials, .close(.loggedOut(code: 401))]),
        (restart, [.close(.restartRequired)]),
        (Node(tag: "failure", attributes: ["reason": "401"]), [.wipeCredentials, .close(.loggedOut(code: 401))]),
        (Node(tag: "xmlstreamend"), [.close(.connectionClosed)]),
    ])
    func theConnectionsEndIsDecidedOnceAndNothingAfterItIsActedOn(_ stanza: Node, _ expected: [ConnectionMachine.Action]) {
        var machine = Self.loggedIn()
        let pending = machine.nextRequestID()
        #expect(machine.received(stanza, account: Self.account) == expected)
        // Whatever was in flight: the answer to a prekey upload or ping, a refill notice, a login, our own end. (A
        // terminal reason after a reconnectable one still counts: `aTerminalReasonAfterOurOwnReconnectableEndStillCounts`.)
        #expect(machine.received(Self.result(pending), account: Self.account).isEmpty)
        #expect(machine.received(Self.lowPreKeys(0), account: Self.account).isEmpty)
        #expect(machine.received(Self.success, account: Self.account).isEmpty)
        #expect(machine.end(.keepaliveTimeout).isEmpty)
        #expect(machine.closing == expected.compactMap { if case .close(let reason) = $0 { reason } else { nil } }.first)
    }

    @Test func aTerminalReasonAfterOurOwnReconnectableEndStillCounts() {
        var machine = Self.loggedIn()
        #expect(machine.end(.keepaliveTimeout) == [.close(.keepaliveTimeout)])
        #expect(machine.received(Self.replaced, account: Self.account) == [.close(.replaced)], "no reconnect into a fight")
        #expect(machine.closing == .replaced)
        #expect(machine.received(Self.deviceRemoved, account: Self.account).isEmpty, "terminal already")
        var other = Self.loggedIn()
        _ = other.end(.keepaliveTimeout)
        #expect(other.received(Self.deviceRemoved, account: Self.account) == [.wipeCredentials, .close(.loggedOut(code: 401))])
    }

    @Test func ourOwnEndWinsOverALaterStreamError() {
        var machine = Self.loggedIn()
        #expect(machine.end(.requested) == [.close(.requested)])
        #expect(machine.received(Self.deviceRemoved, account: Self.account).isEmpty, "no wipe after we chose to end")
        #expect(machine.closing == .requested)
    }
}
