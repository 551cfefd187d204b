import Foundation
import TestSupport
import Testing

/// `/events` against a real `wahost serve`: session changes land in the durable log, survive `kill -9`, and are served
/// as JSON pages and as server-sent events that resume after `Last-Event-ID`.
@Suite(.serialized) struct EventsAPITests {
    /// Reads a server-sent event stream with curl for `seconds`; returns what arrived.
    func states(_ page: HTTPResult) -> [String] {
        (page.object["events"] as? [[String: Any]] ?? []).compactMap { ($0["data"] as? [String: Any])?["state"] as? String }
    }

    @Test func sessionChangesAreLoggedDurablyAndServedAsPagesAndStreams() async throws {
        let rig = try await APIRig()
        let (token, _) = try await rig.createTenant("acme")
        var (server, port) = try await rig.startServer()
        let json = ["x-admin-token": token, "accept": "application/json"]
        _ = try await pairByQR(rig, port: port, tenant: "acme", token: token)
        try await eventually("connected logged") {
            states(try await http("GET", port, "/tenants/acme/events", headers: json)).last == "connected"
        }
        let page = try await http("GET", port, "/tenants/acme/events?limit=1000", headers: json)
        #expect(page.status == 200)
        let events = page.object["events"] as? [[String: Any]] ?? []
        #expect(events.map { $0["id"] as? Int } == (1...events.count).map { $0 }, "numbered from 1 without gaps")
        #expect(events.allSatisfy { $0["type"] as? String == "session" && ($0["timestamp"] as? Int ?? 0) > 1_700_000_000 })
        #expect(states(page).contains("pairing") && states(page).last == "connected")
        let lastID = page.object["last_id"] as? Int ?? 0
        #expect(lastID == events.count)

        // Paging, the alias, and refusals.
        let second = try await http("GET", port, "/tenants/acme/events?after=1&limit=1", headers: json)
        #expect((second.object["events"] as? [[String: Any]])?.map { $0["id"] as? Int } == [2])
        #expect(second.object["last_id"] as? Int == 2)
        #expect(states(try await http("GET", port, "/session/events", headers: json)) == states(page))
        #expect(try await http("GET", port, "/tenants/acme/events", headers: ["accept": "application/json"]).status == 401)
        #expect(try await http("GET", port, "/tenants/acme/events?limit=5000", headers: json).errorCode == "limit_invalid")
        #expect(try await http("GET", port, "/tenants/acme/events?after=-3", headers: json).errorCode == "after_invalid")

        // kill -9 loses nothing already logged; the restart's own changes follow with the next ids.
        await server.kill()
        (server, port) = try await rig.startServer()
        try await eventually("reconnected") { try await isConnected(port, "acme") }
        try await eventually("restart logged") {
            (try await http("GET", port, "/tenants/acme/events?after=\(lastID)", headers: json).object["last_id"] as? Int ?? 0) > lastID
        }
        let after = try await http("GET", port, "/tenants/acme/events", headers: json)
        #expect(Array(states(after).prefix(events.count)) == states(page), "the log before the kill is intact")

        // The stream resumes after Last-Event-ID and carries each event once.
        let stream = try await readEventStream(port, "/tenants/acme/events", headers: ["x-admin-token": token, "last-event-id": "\(lastID)"], seconds: 3).stdout
        let ids = stream.split(separator: "\n").filter { $0.hasPrefix("id: ") }.compactMap { Int($0.dropFirst(4)) }
        #expect(ids.first == lastID + 1 && ids == Array(ids.sorted()) && Set(ids).count == ids.count, "\(stream)")
        #expect(stream.contains("event: session\ndata: {"))
        await rig.stopAll()
    }
}
