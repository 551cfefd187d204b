import Foundation
import TestSupport
import Testing
import WABinary
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

        // By LID: the phone number named beside it is reported and kept, and reported again when a later stanza
        // (also after a restart) names only the LID.
        let viaLID = try await rig.simulator.sendText(from: "15557770004", to: account, text: "by lid", viaLID: true)
        try await eventually("LID message logged") { try await messages(port, token).contains { $0["id"] as? String == viaLID } }
        let lidEvent = try #require(try await messages(port, token).first { $0["id"] as? String == viaLID })
        #expect(lidEvent["from"] as? String == "15557770004@s.whatsapp.net" && lidEvent["from_lid"] as? String == "915557770004@lid")
        #expect(lidEvent["chat"] as? String == "15557770004@s.whatsapp.net")

        // Stored, but the ack never reached the server: after kill -9 the message comes again and is not logged twice.
        await rig.simulator.setIgnoringAcks(true, account: account)
        let unacked = try await rig.simulator.sendText(from: "15557770001", to: account, text: "stored, not acked")
        try await eventually("unacked message logged") { try await messages(port, token).contains { $0["id"] as? String == unacked } }
        await server.kill()
        await rig.simulator.setIgnoringAcks(false, account: account)
        (server, port) = try await rig.startServer()
        try await eventually("redelivery acked") { await rig.simulator.observed.messagesAcked == 5 }
        logged = try await messages(port, token)
        #expect(logged.map { $0["id"] as? String } == [first, second, groupID, viaLID, unacked], "the redelivered message is logged once")
        let lidOnly = try await rig.simulator.sendText(from: "15557770004", to: account, text: "lid only", viaLID: true, namingPhoneNumber: false)
        try await eventually("LID-only message logged") { try await messages(port, token).contains { $0["id"] as? String == lidOnly } }
        let lidOnlyEvent = try #require(try await messages(port, token).first { $0["id"] as? String == lidOnly })
        #expect(lidOnlyEvent["from"] as? String == "15557770004@s.whatsapp.net" && lidOnlyEvent["from_lid"] as? String == "915557770004@lid")

        // The account lost its session with the peer: its msg cannot be read, a retry receipt brings a fresh pkmsg.
        // (The rows go while `serve` is down: a running node caches the records it wrote while it holds the lease.)
        let database = rig.dataDirectory + "/system.db"
        await server.kill()
        _ = try await runProcessDetached("/usr/bin/sqlite3", [database, "DELETE FROM sealed_records WHERE kind = 'session';"])
        (server, port) = try await rig.startServer()
        let retried = try await rig.simulator.sendText(from: "15557770001", to: account, text: "after a retry")
        try await eventually("retried message logged") { try await messages(port, token).contains { $0["id"] as? String == retried } }
        #expect(try await messages(port, token).last?["text"] as? String == "after a retry")
        #expect(try await messages(port, token).last?["id"] as? String == retried)
        #expect(await rig.simulator.observed.receipts["retry"] == 1)
        await rig.stopAll()
    }

    @Test func sentTextsReachThePeersOnceAndErrorsAreClear() async throws {
        let rig = try await APIRig()
        let (token, _) = try await rig.createTenant("acme")
        let (idleToken, _) = try await rig.createTenant("idle")
        var (server, port) = try await rig.startServer()
        let account = try await pairByQR(rig, port: port, tenant: "acme", token: token)
        let auth = ["x-admin-token": token]
        func send(_ body: String, headers: [String: String] = [:], port: Int) async throws -> HTTPResult {
            try await http("POST", port, "/tenants/acme/messages", headers: auth.merging(headers) { $1 }, body: Data(body.utf8))
        }

        // 1:1: a pkmsg until the peer answers (Signal keeps the prekey header until then), a msg after.
        var sent = try await send(#"{"to": "15557770002", "text": "hi peer"}"#, port: port)
        #expect(sent.status == 201, "\(sent.text)")
        #expect(sent.object["to"] as? String == "15557770002@s.whatsapp.net" && sent.object["status"] as? String == "sent")
        #expect((sent.object["id"] as? String)?.hasPrefix("3EB0") == true && (sent.object["timestamp"] as? Int ?? 0) > 1_700_000_000)
        _ = try await rig.simulator.sendText(from: "15557770002", to: account, text: "got it")
        try await eventually("the peer's answer logged") { try await messages(port, token).contains { $0["text"] as? String == "got it" } }
        sent = try await send(#"{"to": "+15557770002@s.whatsapp.net", "text": "second"}"#, port: port)
        #expect(sent.status == 400 && sent.errorCode == "invalid_recipient")
        sent = try await http("POST", port, "/session/messages", headers: auth, body: Data(#"{"to": "15557770002@s.whatsapp.net", "text": "second"}"#.utf8))
        #expect(sent.status == 201, "the alias takes the tenant from the token")
        var inbox = await rig.simulator.received(byPeer: "15557770002")
        #expect(inbox.map(\.text) == ["hi peer", "second"] && inbox.map(\.kinds) == [["pkmsg"], ["msg"]])
        #expect(inbox.allSatisfy { $0.from.hasPrefix(account + ":") })

        // The same Idempotency-Key: the first answer again, nothing sent twice.
        let first = try await send(#"{"to": "15557770002", "text": "once"}"#, headers: ["idempotency-key": "order-17"], port: port)
        let again = try await send(#"{"to": "15557770002", "text": "once"}"#, headers: ["idempotency-key": "order-17"], port: port)
        #expect(first.status == 201 && again.status == 201 && first.object["id"] as? String == again.object["id"] as? String)
        #expect(first.object["timestamp"] as? Int == again.object["timestamp"] as? Int)
        #expect(await rig.simulator.received(byPeer: "15557770002").filter { $0.text == "once" }.count == 1)

        // A group: the sender key goes to each member's device in a pkmsg, the text in one skmsg.
        sent = try await send(#"{"to": "120363025246125486@g.us", "text": "hi family"}"#, port: port)
        #expect(sent.status == 201, "\(sent.text)")
        for member in ["15550000001", "15550000002", "15550000003"] {
            let got = await rig.simulator.received(byPeer: member)
            #expect(got.last?.text == "hi family" && got.last?.chat == "120363025246125486@g.us" && got.last?.kinds == ["pkmsg", "skmsg"], "\(member)")
        }

        // The CLI sends through the running server.
        let cli = try await WahostBinary.runDetached(
            ["send", "acme", "--to", "15557770002", "--text", "from the shell", "--url", "http://127.0.0.1:\(port)", "--token", token], environment: [:])
        #expect(cli.status == 0, "\(cli.stderr)")
        #expect((try WahostBinary.json(cli))["status"] as? String == "sent")
        #expect(await rig.simulator.received(byPeer: "15557770002").last?.text == "from the shell")
        let refused = try await WahostBinary.runDetached(
            ["send", "acme", "--to", "4915112345678", "--text", "x", "--url", "http://127.0.0.1:\(port)", "--token", token], environment: [:])
        #expect(refused.status == 1 && refused.stderr.contains("not on WhatsApp"), "\(refused.stderr)")

        // What the sends learned is reused: no device-list query for a known peer, only the skmsg to a group whose
        // devices hold our sender key; a devices notification makes the next send ask again.
        let queries = await rig.simulator.observed.deviceListQueries
        #expect(try await send(#"{"to": "15557770002", "text": "cached"}"#, port: port).status == 201)
        #expect(await rig.simulator.observed.deviceListQueries == queries)
        #expect(try await send(#"{"to": "120363025246125486@g.us", "text": "family again"}"#, port: port).status == 201)
        #expect(await rig.simulator.received(byPeer: "15550000001").last?.kinds == ["skmsg"])
        #expect(await rig.simulator.received(byPeer: "15550000001").last?.text == "family again")
        await rig.simulator.notifyDevicesChanged(of: "15557770002", toAccount: account)
        try await eventually("notification handled") {
            _ = try await send(#"{"to": "15557770002", "text": "asks again"}"#, port: port)
            return await rig.simulator.observed.deviceListQueries >= queries + 1
        }

        // Errors.
        #expect(try await send(#"{"to": "4915112345678", "text": "x"}"#, port: port).errorCode == "not_on_whatsapp")
        #expect(try await send(#"{"to": "not a number", "text": "x"}"#, port: port).errorCode == "invalid_recipient")
        #expect(try await send(#"{"to": "15557770002", "text": ""}"#, port: port).errorCode == "invalid_text")
        let long = String(repeating: "a", count: 65_537)
        #expect(try await send(#"{"to": "15557770002", "text": "\#(long)"}"#, port: port).errorCode == "invalid_text")
        let notUTF8 = try await http("POST", port, "/tenants/acme/messages", headers: auth, body: Data([0x7B, 0xFF, 0xFE, 0x7D]))
        #expect(notUTF8.status == 400 && notUTF8.errorCode == "invalid_text")
        #expect(try await send("[1,2]", port: port).errorCode == "invalid_json")
        #expect(try await send(#"{"to": "15557770002", "text": "x"}"#, headers: ["idempotency-key": String(repeating: "k", count: 129)], port: port)
            .errorCode == "invalid_idempotency_key")
        #expect(try await http("POST", port, "/tenants/acme/messages", body: Data(#"{"to": "1555", "text": "x"}"#.utf8)).status == 401)
        let idle = try await http(
            "POST", port, "/tenants/idle/messages", headers: ["x-admin-token": idleToken], body: Data(#"{"to": "15557770002", "text": "x"}"#.utf8))
        #expect(idle.status == 409 && idle.errorCode == "not_connected")

        // Receipts from the peers' phones land in the log.
        try await eventually("delivery receipts logged") {
            let page = try await http("GET", port, "/tenants/acme/events?limit=1000", headers: ["x-admin-token": token, "accept": "application/json"])
            let receipts = (page.object["events"] as? [[String: Any]] ?? []).filter { $0["type"] as? String == "receipt" }
            return receipts.contains { event in
                let data = event["data"] as? [String: Any] ?? [:]
                return data["type"] as? String == "delivered" && (data["ids"] as? [String])?.contains(first.object["id"] as? String ?? "") == true
                    && data["from"] as? String == "15557770002@s.whatsapp.net"
            }
        }

        // The peer lost its session: its retry receipt brings the text again in a fresh pkmsg.
        await rig.simulator.forgetSession(ofPeer: "15557770002", withAccount: account)
        sent = try await send(#"{"to": "15557770002", "text": "lost and found"}"#, port: port)
        #expect(sent.status == 201)
        try await eventually("the retried text read") {
            await rig.simulator.received(byPeer: "15557770002").last?.text == "lost and found"
        }
        #expect(await rig.simulator.received(byPeer: "15557770002").last?.kinds == ["pkmsg"])
        #expect(await rig.simulator.observed.undecryptableByPeers == 1)
        _ = try await rig.simulator.sendText(from: "15557770002", to: account, text: "found it")
        try await eventually("answer after the retry logged") { try await messages(port, token).contains { $0["text"] as? String == "found it" } }

        // After a restart the stored session is used: a msg, not a new pkmsg; replies still decrypt.
        await server.kill()
        (server, port) = try await rig.startServer()
        try await eventually("reconnected") { try await isConnected(port, "acme") }
        sent = try await send(#"{"to": "15557770002", "text": "after restart"}"#, port: port)
        #expect(sent.status == 201, "\(sent.text)")
        inbox = await rig.simulator.received(byPeer: "15557770002")
        #expect(inbox.last?.text == "after restart" && inbox.last?.kinds == ["msg"])
        _ = try await rig.simulator.sendText(from: "15557770002", to: account, text: "reply")
        try await eventually("reply logged") { try await messages(port, token).contains { $0["text"] as? String == "reply" } }
        let logged = try await messages(port, token)
        #expect(logged.filter { $0["from_me"] as? Bool == true }.compactMap { $0["text"] as? String }.filter { $0 != "asks again" } == ["hi peer", "second", "once", "hi family", "from the shell", "cached", "family again", "lost and found", "after restart"])
        await rig.stopAll()
    }

    @Test func malformedAndUndecryptableStanzasAreAckedOrRetriedAndTheSessionGoesOn() async throws {
        let rig = try await APIRig()
        let (token, _) = try await rig.createTenant("acme")
        let (_, port) = try await rig.startServer()
        let account = try await pairByQR(rig, port: port, tenant: "acme", token: token)
        try await eventually("prekeys uploaded") { await rig.simulator.observed.preKeys[account] ?? 0 > 0 }
        let peer = JID.phoneNumber("15557770003")
        let now = String(Int(Date().timeIntervalSince1970))
        func message(_ id: String, from: JID = peer, _ children: [Node]) -> Node {
            Node(tag: "message", attributes: ["id": .string(id), "from": .jid(from), "t": .string(now)], children: children)
        }
        let junk = (0..<64).map { UInt8(truncatingIfNeeded: $0 &* 37) }
        let stanzas = [
            message("G1", []),  // no payload
            message("G2", [Node(tag: "enc", attributes: ["v": "2", "type": "msg"], bytes: junk)]),  // no session, bad bytes
            message("G3", [Node(tag: "enc", attributes: ["v": "2", "type": "pkmsg"], bytes: junk)]),
            message("", [Node(tag: "enc", attributes: ["v": "2", "type": "msg"], bytes: junk)]),  // no id
            message("G5", from: .group("120363025246125486"), [Node(tag: "enc", attributes: ["v": "2", "type": "skmsg"], bytes: junk)]),
            message("G6", [Node(tag: "enc", attributes: ["v": "2", "type": "msmsg"], bytes: junk)]),  // only a kind we do not read
            message("G7", [Node(tag: "enc", attributes: ["v": "2", "type": "msg"], bytes: [])]),  // empty payload
            Node(tag: "message", attributes: ["from": "garbage", "id": "G8"]),
        ]
        let acksBefore = await rig.simulator.observed.messageAcksReceived
        for stanza in stanzas { await rig.simulator.inject(stanza, toAccount: account) }
        // Every stanza with an id is acked (one without an id cannot be).
        try await eventually("every stanza acked") { await rig.simulator.observed.messageAcksReceived - acksBefore == stanzas.count - 1 }
        #expect(await rig.simulator.observed.receipts["retry"] == 2, "the two decryptable-looking ones are asked for again")
        #expect(try await isConnected(port, "acme"), "the session goes on")
        #expect(try await messages(port, token).isEmpty, "nothing unreadable is reported as a message")
        _ = try await rig.simulator.sendText(from: "15557770003", to: account, text: "still here")
        try await eventually("a real message after the junk") { try await messages(port, token).map { $0["text"] as? String } == ["still here"] }
        await rig.stopAll()
    }

    @Test func aSendWaitingOnTheServerDoesNotHoldUpIncomingMessagesAndForeignRetriesAreRefused() async throws {
        let rig = try await APIRig()
        let (token, _) = try await rig.createTenant("acme")
        let (_, port) = try await rig.startServer()
        let account = try await pairByQR(rig, port: port, tenant: "acme", token: token)
        try await eventually("prekeys uploaded") { await rig.simulator.observed.preKeys[account] ?? 0 > 0 }

        // The device-list request of a send to a new contact is held; a message arriving meanwhile is still stored.
        await rig.simulator.hold(.deviceList)
        let send = Task {
            try await http(
                "POST", port, "/tenants/acme/messages", headers: ["x-admin-token": token], body: Data(#"{"to": "15557770006", "text": "waiting"}"#.utf8))
        }
        try await eventually("the send asked for devices") { await rig.simulator.observed.heldRequests["device_list"] == 1 }
        _ = try await rig.simulator.sendText(from: "15557770007", to: account, text: "meanwhile")
        try await eventually("the message is stored while the send waits") { try await messages(port, token).contains { $0["text"] as? String == "meanwhile" } }
        await rig.simulator.release(.deviceList)
        let sent = try await send.value
        #expect(sent.status == 201, "\(sent.text)")
        let id = try #require(sent.object["id"] as? String)
        #expect(await rig.simulator.received(byPeer: "15557770006").map(\.text) == ["waiting"])

        // A retry receipt for that message from someone outside its chat gets nothing; the recipient's own does.
        let stranger = JID.phoneNumber("15557770008")
        await rig.simulator.inject(
            Node(tag: "receipt", attributes: ["id": .string(id), "from": .jid(stranger), "type": "retry"], children: [Node(tag: "retry", attributes: ["count": "1"])]),
            toAccount: account)
        await rig.simulator.forgetSession(ofPeer: "15557770006", withAccount: account)
        #expect(try await http(
            "POST", port, "/tenants/acme/messages", headers: ["x-admin-token": token], body: Data(#"{"to": "15557770006", "text": "again"}"#.utf8)).status == 201)
        try await eventually("the recipient's retry answered") { await rig.simulator.received(byPeer: "15557770006").last?.text == "again" }
        #expect(await rig.simulator.received(byPeer: "15557770008").isEmpty, "the stranger read nothing")
        await rig.stopAll()
    }
}
