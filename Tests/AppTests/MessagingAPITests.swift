import Foundation
import TestSupport
import Testing
import WhatsAppSimulator

/// Messages through a real `wahost serve` and the simulator's peers: received texts land on `/events` once, before the
/// ack; a redelivery after `kill -9` is dropped; a message the account cannot decrypt is asked for again.
@Suite(.serialized) struct MessagingAPITests {
    func messages(_ port: Int, _ token: String) async throws -> [[String: Any]] {
        let page = try await http("GET", port, "/tenants/acme/events?limit=1000", headers: ["x-admin-token": token, "accept": "application/json"])
        return (page.object["events"] as? [[String: Any]] ?? []).filter { $0["type"] as? String == "message" }.compactMap { $0["data"] as? [String: Any] }
    }

    @Test func receivedMessagesAreStoredOnceBeforeTheirAck() async throws {
        let rig = try await APIRig()
        let (token, _) = try await rig.createTenant("acme")
        var (server, port) = try await rig.startServer()
        let account = try await pairByQR(rig, port: port, tenant: "acme", token: token)
        try await eventually("prekeys uploaded") { await rig.simulator.observed.preKeys[account] ?? 0 > 0 }

        // 1:1, first a pkmsg, then a msg on the same session.
        let first = try await rig.simulator.sendText(from: "15557770001", to: account, text: "hello wahost")
        let second = try await rig.simulator.sendText(from: "15557770001", to: account, text: "ça va? 👋")
        try await eventually("both messages logged") { try await messages(port, token).count == 2 }
        var logged = try await messages(port, token)
        #expect(logged.map { $0["id"] as? String } == [first, second])
        #expect(logged.map { $0["text"] as? String } == ["hello wahost", "ça va? 👋"])
        let event = logged[0]
        #expect(event["chat"] as? String == "15557770001@s.whatsapp.net" && event["from"] as? String == "15557770001@s.whatsapp.net")
        #expect(event["from_me"] as? Bool == false && event["group"] as? Bool == false && event["type"] as? String == "text")
        #expect(event["push_name"] as? String == "Peer 15557770001" && (event["timestamp"] as? Int ?? 0) > 1_700_000_000)
        try await eventually("acked and receipted") { await rig.simulator.observed.messagesAcked == 2 }
        #expect(await rig.simulator.observed.receipts["delivery"] == 2)

        // A group message: the peer's sender key arrives in a pkmsg beside the skmsg.
        let group = "120363025246125486@g.us"
        let groupID = try await rig.simulator.sendText(from: "15550000001", to: account, text: "hi family", group: group)
        try await eventually("group message logged") { try await messages(port, token).count == 3 }
        logged = try await messages(port, token)
        #expect(logged[2]["id"] as? String == groupID && logged[2]["chat"] as? String == group && logged[2]["group"] as? Bool == true)
        #expect(logged[2]["from"] as? String == "15550000001@s.whatsapp.net" && logged[2]["text"] as? String == "hi family")

        // Stored, but the ack never reached the server: after kill -9 the message comes again and is not logged twice.
        await rig.simulator.setIgnoringAcks(true, account: account)
        let unacked = try await rig.simulator.sendText(from: "15557770001", to: account, text: "stored, not acked")
        try await eventually("unacked message logged") { try await messages(port, token).count == 4 }
        server.kill()
        await rig.simulator.setIgnoringAcks(false, account: account)
        (server, port) = try await rig.startServer()
        try await eventually("redelivery acked") { await rig.simulator.observed.messagesAcked == 4 }
        logged = try await messages(port, token)
        #expect(logged.map { $0["id"] as? String } == [first, second, groupID, unacked], "the redelivered message is logged once")

        // The account lost its session with the peer: its msg cannot be read, a retry receipt brings a fresh pkmsg.
        let database = rig.dataDirectory + "/system.db"
        _ = try runProcess("/usr/bin/sqlite3", [database, "DELETE FROM sealed_records WHERE kind = 'session';"])
        let retried = try await rig.simulator.sendText(from: "15557770001", to: account, text: "after a retry")
        try await eventually("retried message logged") { try await messages(port, token).count == 5 }
        #expect(try await messages(port, token).last?["text"] as? String == "after a retry")
        #expect(try await messages(port, token).last?["id"] as? String == retried)
        #expect(await rig.simulator.observed.receipts["retry"] == 1)
        await rig.stopAll()
    }
}
