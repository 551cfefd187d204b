import Foundation
import TestSupport
import WhatsApp
import WhatsAppSimulator

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The nodes of `chaos --nodes N`: `wahost serve` processes on one PostgreSQL, each with a data directory and node id
/// of its own (credentials live in the database, so nothing else is shared), and the calls that check that every
/// node answers for every tenant.
final class ChaosCluster: @unchecked Sendable {
    struct Node: Sendable {
        let id: String
        let directory: String
        var process: ChildProcess
        var port: Int
    }

    let rig: BenchRig
    let environment: [String: String]
    private(set) var nodes: [Node] = []
    /// Peers the probes text, one per text, so each inbox holds exactly the texts sent to it.
    private var nextPeer = 0

    init(rig: BenchRig, environment: [String: String]) {
        self.rig = rig
        self.environment = environment
    }

    /// Starts node `chaos-<index>` on its own data directory (appended when new, replacing the stopped one otherwise).
    func start(_ index: Int) async throws {
        let (id, directory) = ("chaos-\(index)", rig.directory + "/node-\(index)")
        let server = try await rig.startServer(extraEnvironment: environment, dataDirectory: directory, arguments: ["--node-id", id])
        let node = Node(id: id, directory: directory, process: server.process, port: server.port)
        if index < nodes.count { nodes[index] = node } else { nodes.append(node) }
    }

    /// SIGTERMs the node and waits until `deadline` for it to exit; after it, kills it and returns false.
    func waitStopped(_ index: Int, by deadline: ContinuousClock.Instant) async throws -> Bool {
        let process = nodes[index].process
        while process.process.isRunning, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        guard process.process.isRunning else { return true }
        kill(process.pid, SIGKILL)
        await process.process.exited()
        return false
    }

    /// The tenants each node runs connected, by the node's own account (`GET /tenants`, `owner_node`).
    func running() async throws -> [[String]] {
        var running: [[String]] = []
        for node in nodes { running.append(try await rig.tenantsRunning(onNodeAt: node.port, nodeID: node.id)) }
        return running
    }

    /// How long a handed-over session may run on no node (the issue's bound for a SIGTERM handover).
    static let handoverBoundSeconds = 5

    /// The node index running each tenant's session, as the nodes say.
    func ownerIndices() async throws -> [String: Int] {
        var owners: [String: Int] = [:]
        for (index, tenants) in try await running().enumerated() { for tenant in tenants { owners[tenant] = index } }
        return owners
    }

    /// Files under any node's `auth/` (credential files; with PostgreSQL there must be none).
    func credentialFiles() -> [String] {
        nodes.flatMap { node -> [String] in
            let auth = node.directory + "/auth"
            let paths = FileManager.default.enumerator(atPath: auth)?.allObjects as? [String] ?? []
            return paths.map { auth + "/" + $0 }.filter { path in
                var directory: ObjCBool = false
                return FileManager.default.fileExists(atPath: path, isDirectory: &directory) && !directory.boolValue
            }
        }
    }

    // MARK: Every endpoint through a node that does not run the session

    /// Calls every session endpoint for `count` tenants (in turn over the cycles), each through a node that does not
    /// run its session (a different one each cycle), and expects the owner's correct answer, forwarded.
    func probeSample(cycle: Int, count: Int) async throws -> ProbeTally {
        var tally = ProbeTally()
        var owners = try await ownerIndices()
        var jobs: [(tenant: String, token: String, account: String, through: Node, owner: String, peer: String)] = []
        for offset in 0..<min(count, rig.tokens.count) {
            let (tenant, token) = rig.tokens[(cycle * count + offset) % rig.tokens.count]
            if owners[tenant] == nil {
                // A handover in flight (balancing after the restart): released, not yet logged in on its taker.
                let since = ContinuousClock.now
                while owners[tenant] == nil, ContinuousClock.now < since + .seconds(Self.handoverBoundSeconds) {
                    try await Task.sleep(for: .milliseconds(100))
                    owners = try await ownerIndices()
                }
                let gap = seconds(ContinuousClock.now - since)
                if owners[tenant] != nil {
                    tally.ownerGaps += 1
                    tally.longestOwnerGap = max(tally.longestOwnerGap, gap)
                }
                FileHandle.standardError.write(Data("chaos: cycle \(cycle): \(tenant) on no node for \(String(format: "%.1f", gap)) s at \(Date())\n".utf8))
            }
            guard let owner = owners[tenant], let account = rig.accounts[tenant] else {
                tally.wrong.append("cycle \(cycle): \(tenant) runs on no node for \(Self.handoverBoundSeconds) s (since before \(Date()))")
                continue
            }
            let through = nodes[(owner + 1 + (cycle + offset) % (nodes.count - 1)) % nodes.count]
            nextPeer += 1
            jobs.append((tenant, token, account, through, nodes[owner].id, "1555666" + String(format: "%04d", nextPeer % 10_000)))
        }
        let loginsBefore = try await rig.simulatorState()["logins"] as? [String: Int] ?? [:]
        let found = await withTaskGroup(of: ProbeTally.self) { group in
            for job in jobs {
                group.addTask {
                    await Self.probeEndpoints(
                        job.tenant, token: job.token, account: job.account, through: job.through, owner: job.owner, peer: job.peer,
                        label: "cycle \(cycle)")
                }
            }
            var found = ProbeTally()
            for await one in group { found.add(one) }
            return found
        }
        tally.add(found)
        let loginsAfter = try await rig.simulatorState()["logins"] as? [String: Int] ?? [:]
        for answer in tally.unlessMoved {
            if loginsAfter[answer.account] != loginsBefore[answer.account] {
                tally.refusalsInMotion["balancing: " + answer.summary, default: 0] += 1
            } else {
                tally.wrong.append(answer.wrong)
            }
        }
        tally.unlessMoved = []
        return tally
    }

    /// Status, groups, a text to `peer`, the events page and the event stream resumed, through `through`.
    static func probeEndpoints(
        _ tenant: String, token: String, account: String, through node: Node, owner: String, peer: String, label: String
    ) async -> ProbeTally {
        var tally = ProbeTally()
        let auth = ["x-admin-token": token]
        let at = "\(label): \(tenant) through \(node.id) (owner \(owner))"
        func expect(_ what: String, _ answer: NodeAnswer, status: Int, _ correct: Bool) {
            tally.calls += 1
            guard answer.status != status || answer.servedBy != owner || !correct else { return }
            let wrong = "\(at): \(what) answered \(answer.summary), served by \(answer.servedBy ?? "itself")"
            // Right only if a balancing move took the session meanwhile: a status or answer from its next node, or
            // the product's "moving, retry" refusal. The caller checks the simulator's logins to tell.
            if [200, 201].contains(answer.status) || answer.errorCode == "session_moving" {
                tally.unlessMoved.append(MovedAnswer(account: account, wrong: wrong, summary: answer.summary))
            } else {
                tally.wrong.append(wrong)
            }
        }
        let status = await callNode("GET", port: node.port, "/tenants/\(tenant)/session/status", headers: auth)
        expect("status", status, status: 200, status.object["connected"] as? Bool == true && (status.object["me"] as? String)?.hasPrefix(account) == true)
        let groups = await callNode("GET", port: node.port, "/tenants/\(tenant)/session/groups", headers: auth)
        expect("groups", groups, status: 200, Self.isGroupFixture(groups.json))
        let text = "probe \(label) to \(peer)"
        let sent = await callNode("POST", port: node.port, "/tenants/\(tenant)/messages", headers: auth, body: ["to": peer, "text": text])
        expect("messages", sent, status: 201, sent.object["id"] is String)
        if sent.status == 201 { tally.texts.append(ProbeText(peer: peer, text: text, account: account, label: at)) }

        // The JSON pages to the end, then the stream resumed three events before it: it must replay the last two.
        var ids: [Int] = []
        var after = 0
        while true {
            let page = await callNode("GET", port: node.port, "/tenants/\(tenant)/events?limit=1000&after=\(after)", headers: auth.merging(["accept": "application/json"]) { $1 })
            let pageIDs = (page.object["events"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? Int }
            let ordered = zip(pageIDs, pageIDs.dropFirst()).allSatisfy { $0 < $1 } && pageIDs.allSatisfy { $0 > after }
            expect("events page", page, status: 200, ordered && page.object["last_id"] as? Int == (pageIDs.last ?? after))
            ids += pageIDs
            guard page.status == 200, pageIDs.count == 1000 else { break }
            after = pageIDs.last ?? after
        }
        guard ids.count >= 3 else {
            tally.wrong.append("\(at): only \(ids.count) events to resume a stream in")
            return tally
        }
        tally.calls += 1
        do {
            let stream = try await readEventStream(port: node.port, "/tenants/\(tenant)/events", headers: auth.merging(["last-event-id": "\(ids[ids.count - 3])"]) { $1 })
            let head = stream.head.lowercased()
            let ordered = zip(stream.ids, stream.ids.dropFirst()).allSatisfy { $0 < $1 }
            let contentRight = head.contains("text/event-stream") && Array(stream.ids.prefix(2)) == Array(ids.suffix(2)) && ordered
            if contentRight, !head.contains("x-wahost-served-by: \(owner)") {
                // Served by another node or by this one (its view of the leases a heartbeat old), as `expect` allows:
                // right only if a balancing move took the session meanwhile.
                tally.unlessMoved.append(MovedAnswer(account: account, wrong: "\(at): event stream not served by its owner", summary: "stream from another node"))
            } else if !contentRight {
                tally.wrong.append("\(at): event stream resumed at \(ids[ids.count - 3]) gave \(stream.ids.prefix(5)) (page ended \(ids.suffix(2))), head \(stream.head.prefix(200))")
            }
        } catch {
            tally.wrong.append("\(at): event stream: \(error)")
        }
        return tally
    }

    /// True when `json` is the simulator's group list (every account is in the same groups).
    static func isGroupFixture(_ json: Any?) -> Bool {
        let subjects = (json as? [[String: Any]] ?? []).compactMap { $0["subject"] as? String }
        return subjects.sorted() == WhatsAppSimulator.groupFixture.map(\.subject).sorted()
    }

    /// The texts that did not reach their peer exactly once from the sending tenant's account (waits up to 30 s).
    func undelivered(_ texts: [ProbeText]) async throws -> [String] {
        let deadline = ContinuousClock.now + .seconds(30)
        while true {
            var missing: [String] = []
            for sent in texts {
                let (_, inbox) = try await request("GET", rig.control + "/peers/\(sent.peer)/messages")
                let copies = (inbox["messages"] as? [[String: Any]] ?? []).filter {
                    $0["text"] as? String == sent.text && ($0["from"] as? String)?.hasPrefix(sent.account + ":") == true
                }
                if copies.count != 1 { missing.append("\(sent.label): the text reached its peer \(copies.count) times") }
            }
            if missing.isEmpty || ContinuousClock.now >= deadline { return missing }
            try await Task.sleep(for: .milliseconds(500))
        }
    }
}

/// What calls through nodes that do not run the session found.
struct ProbeTally: Sendable {
    var calls = 0
    var wrong: [String] = []
    var texts: [ProbeText] = []
    /// Refusals while a session moved (allowed until it moved and the asking node read the new lease), by error code.
    var refusalsInMotion: [String: Int] = [:]
    /// Those of them answered after the session had already logged in on its new node, and the latest, in seconds after.
    var refusalsAfterMove = 0
    var latestRefusalAfterMove = 0.0
    /// Sessions a probe found on no node (a handover in flight) that came up within the bound, and the longest gap.
    var ownerGaps = 0
    var longestOwnerGap = 0.0
    /// Answers that are wrong unless the session moved (logged in anew) during the probe.
    var unlessMoved: [MovedAnswer] = []

    mutating func add(_ other: ProbeTally) {
        calls += other.calls
        wrong += other.wrong
        texts += other.texts
        refusalsInMotion.merge(other.refusalsInMotion, uniquingKeysWith: +)
        refusalsAfterMove += other.refusalsAfterMove
        latestRefusalAfterMove = max(latestRefusalAfterMove, other.latestRefusalAfterMove)
        unlessMoved += other.unlessMoved
        ownerGaps += other.ownerGaps
        longestOwnerGap = max(longestOwnerGap, other.longestOwnerGap)
    }
}

/// A probe's answer that is right only if its session moved meanwhile.
struct MovedAnswer: Sendable {
    let account: String
    let wrong: String
    let summary: String
}

/// A text a probe sent through a node, to check at its peer.
struct ProbeText: Sendable {
    let peer: String
    let text: String
    let account: String
    let label: String
}

/// A node's answer: status, the node that served it when forwarded, and the body as JSON.
struct NodeAnswer {
    var status: Int
    var servedBy: String?
    var json: Any?
    /// Why no answer came (connection refused, timeout).
    var transportError: String?

    var object: [String: Any] { json as? [String: Any] ?? [:] }
    var errorCode: String? { (object["error"] as? [String: Any])?["code"] as? String }
    var summary: String { transportError ?? "\(status)\(errorCode.map { " " + $0 } ?? "")" }
}

/// One call to the node on `port`; a transport failure is an answer with status 0.
func callNode(_ method: String, port: Int, _ path: String, headers: [String: String] = [:], body: [String: Any]? = nil) async -> NodeAnswer {
    var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
    request.httpMethod = method
    request.timeoutInterval = 30
    for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
    if let body {
        request.httpBody = try? JSONSerialization.data(withJSONObject: body)
        request.setValue("application/json", forHTTPHeaderField: "content-type")
    }
    do {
        let (data, response) = try await URLSession.shared.data(for: request)
        let http = response as? HTTPURLResponse
        return NodeAnswer(
            status: http?.statusCode ?? 0, servedBy: http?.value(forHTTPHeaderField: "x-wahost-served-by"), json: try? JSONSerialization.jsonObject(with: data))
    } catch {
        return NodeAnswer(status: 0, transportError: "\(error)")
    }
}

/// A server-sent event stream read with curl for two seconds: the response head and the event ids in order.
func readEventStream(port: Int, _ path: String, headers: [String: String]) async throws -> (head: String, ids: [Int]) {
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("wahost-sse-\(UUID().uuidString)").path
    guard FileManager.default.createFile(atPath: file, contents: nil), let output = FileHandle(forWritingAtPath: file) else {
        throw BenchError("cannot create \(file)")
    }
    defer { try? FileManager.default.removeItem(atPath: file) }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
    process.arguments = ["-sN", "-D", "-", "--max-time", "2"] + headers.flatMap { ["-H", "\($0.key): \($0.value)"] } + ["http://127.0.0.1:\(port)\(path)"]
    process.standardOutput = output
    process.standardError = FileHandle.nullDevice
    try process.run()
    // Polled, not waited for: a blocked thread would stall the bench's other tasks.
    while process.isRunning { try await Task.sleep(for: .milliseconds(50)) }
    try output.close()
    let text = try String(contentsOfFile: file, encoding: .utf8)
    let parts = text.components(separatedBy: "\r\n\r\n")
    let body = parts.dropFirst().joined(separator: "\r\n\r\n")
    let ids = body.split(separator: "\n").compactMap { $0.hasPrefix("id: ") ? Int($0.dropFirst(4)) : nil }
    return (parts.first ?? "", ids)
}
