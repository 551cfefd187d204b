import Foundation
import Hummingbird
import NIOCore

/// The simulator's HTTP control surface under `/control/`: the scriptable phone and fault injection for other
/// processes (the benchmark, demo mode, `wahost sim`). Bind the simulator to loopback; there is no auth.
enum SimulatorControl {
    struct ScanRequest: Decodable { let qr: String }
    struct LinkCodeRequest: Decodable { let code: String }
    struct StreamErrorRequest: Decodable {
        let code: Int?
        let conflict: String?
    }
    struct SilentRequest: Decodable { let silent: Bool }
    struct StallLoginRequest: Decodable { let stall: Bool }
    struct WireFaultRequest: Decodable {
        let kind: String
        let seconds: Double?
    }
    struct ConnectFaultRequest: Decodable {
        let kind: String
        let count: Int?
    }
    struct ConsumePreKeysRequest: Decodable { let leaving: Int }
    struct Queued: ResponseEncodable { let ids: [String] }
    struct Applied: ResponseEncodable { let connections: Int }
    struct Reached: ResponseEncodable {
        let status: String
        let connections: Int
    }
    struct PeerMessageRequest: Decodable {
        let to: String
        let text: String
        let group: String?
    }
    struct Sent: ResponseEncodable { let id: String }
    struct LoadRequest: Decodable {
        let perAccount: Int
        let rate: Int
    }
    struct LoadStarted: ResponseEncodable { let queued: Int }
    struct PeerReading: Decodable { let deferred: Bool }
    struct PeersRead: ResponseEncodable {
        let read: Int
        let unreadable: Int
        let unanswered: Int
    }
    struct PeerInbox: ResponseEncodable { let messages: [PeerMessage] }
    struct Linked: ResponseEncodable { let jid: String }
    struct Done: ResponseEncodable { let status: String }
    struct Failure: Error, HTTPResponseError {
        let status: HTTPResponse.Status
        let message: String
        func response(from request: Request, context: some RequestContext) throws -> Response {
            let body = try JSONSerialization.data(withJSONObject: ["error": ["code": "simulator", "message": message]])
            return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
        }
    }

    static func router(for simulator: WhatsAppSimulator) -> Router<BasicRequestContext> {
        let router = Router()
        let control = router.group("control")
        control.get("state") { _, _ -> Response in
            let data = try JSONEncoder().encode(await simulator.observed)
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
        }
        control.post("scan") { request, context -> Linked in
            let body = try await decode(ScanRequest.self, request, context)
            do { return Linked(jid: try await simulator.scanQRCode(body.qr)) } catch {
                throw Failure(status: .unprocessableContent, message: "\(error)")
            }
        }
        control.post("link-code") { request, context -> Linked in
            let body = try await decode(LinkCodeRequest.self, request, context)
            do { return Linked(jid: try await simulator.enterLinkCode(body.code)) } catch {
                throw Failure(status: .unprocessableContent, message: "\(error)")
            }
        }
        control.post("accounts/:user/stream-error") { request, context -> Reached in
            let body = try await decode(StreamErrorRequest.self, request, context)
            return Reached(status: "sent", connections: await simulator.sendStreamError(toAccount: try user(context), code: body.code, conflict: body.conflict))
        }
        control.post("accounts/:user/remove-device") { _, context -> Done in
            await simulator.removeDevice(ofAccount: try user(context))
            return Done(status: "removed")
        }
        control.post("accounts/:user/drop") { _, context -> Reached in
            Reached(status: "dropped", connections: await simulator.dropConnections(ofAccount: try user(context)))
        }
        control.post("accounts/:user/stall-login") { request, context -> Done in
            let body = try await decode(StallLoginRequest.self, request, context)
            let user = try user(context)
            if body.stall { await simulator.stallNextLogin(of: user) } else { await simulator.cancelLoginStall(of: user) }
            return Done(status: body.stall ? "armed" : "disarmed")
        }
        control.post("accounts/:user/silent") { request, context -> Done in
            let body = try await decode(SilentRequest.self, request, context)
            await simulator.setSilent(body.silent, account: try user(context))
            return Done(status: body.silent ? "silent" : "answering")
        }
        control.post("accounts/:user/wire-fault") { request, context -> Applied in
            let body = try await decode(WireFaultRequest.self, request, context)
            return Applied(connections: await simulator.applyWireFault(try wireFault(body), toAccount: try user(context)))
        }
        control.post("connect-fault") { request, context -> Done in
            let body = try await decode(ConnectFaultRequest.self, request, context)
            guard let fault = SimulatedConnectFault(rawValue: body.kind) else {
                throw Failure(status: .badRequest, message: "kind must be upgrade_unanswered or hello_unanswered")
            }
            let count = body.count ?? 1
            guard (0...1000).contains(count) else { throw Failure(status: .badRequest, message: "count must be 0-1000") }
            await simulator.armConnectFault(fault, count: count)
            return Done(status: count == 0 ? "disarmed" : "armed")
        }
        control.post("accounts/:user/consume-prekeys") { request, context -> Done in
            let body = try await decode(ConsumePreKeysRequest.self, request, context)
            guard (0...100_000).contains(body.leaving) else { throw Failure(status: .badRequest, message: "leaving must be 0-100000") }
            await simulator.consumePreKeys(ofAccount: try user(context), leaving: body.leaving)
            return Done(status: "consumed")
        }
        control.get("accounts/:user/queued") { _, context -> Queued in
            Queued(ids: await simulator.queuedMessageIDs(ofAccount: try user(context)))
        }
        control.post("peers/:user/messages") { request, context -> Sent in
            let body = try await decode(PeerMessageRequest.self, request, context)
            do { return Sent(id: try await simulator.sendText(from: try user(context), to: body.to, text: body.text, group: body.group)) } catch {
                throw Failure(status: .unprocessableContent, message: "\(error)")
            }
        }
        control.get("peers/:user/messages") { _, context -> PeerInbox in
            PeerInbox(messages: await simulator.received(byPeer: try user(context)))
        }
        control.post("load") { request, context -> LoadStarted in
            let body = try await decode(LoadRequest.self, request, context)
            guard body.perAccount > 0, body.rate > 0 else { throw Failure(status: .badRequest, message: "perAccount and rate must be positive") }
            do { return LoadStarted(queued: try await simulator.startInboundLoad(perAccount: body.perAccount, rate: body.rate)) } catch {
                throw Failure(status: .unprocessableContent, message: "\(error)")
            }
        }
        // Benchmarks: `{"deferred": true}` acks messages from accounts without the peers reading them; `false` has
        // the peers read everything kept and answers how many they read.
        control.post("load/peer-reading") { request, context -> PeersRead in
            let body = try await decode(PeerReading.self, request, context)
            let (read, unreadable, unanswered) = await simulator.deferPeerReading(body.deferred)
            return PeersRead(read: read, unreadable: unreadable, unanswered: unanswered)
        }
        control.get("load") { _, _ -> Response in
            let data = try JSONEncoder().encode(await simulator.loadReport)
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
        }
        return router
    }

    private static func user(_ context: BasicRequestContext) throws -> String {
        guard let user = context.parameters.get("user"), !user.isEmpty, user.allSatisfy(\.isNumber) else {
            throw Failure(status: .badRequest, message: "the account user is the phone number, digits only")
        }
        return user
    }

    /// `stall`, `slow` (with `seconds`, 0-600), `silent`, `garbage` or `overlong`.
    private static func wireFault(_ body: WireFaultRequest) throws -> SimulatedWireFault {
        switch body.kind {
        case "stall": return .stallMidFrame
        case "silent": return .silent
        case "garbage": return .garbageFrame
        case "overlong": return .overlongFrame
        case "slow":
            guard let seconds = body.seconds, seconds.isFinite, (0...600).contains(seconds) else {
                throw Failure(status: .badRequest, message: "slow needs seconds, 0-600")
            }
            return .slowAnswers(.milliseconds(Int64(seconds * 1000)))
        default: throw Failure(status: .badRequest, message: "kind must be stall, slow, silent, garbage or overlong")
        }
    }

    private static func decode<T: Decodable>(_ type: T.Type, _ request: Request, _ context: BasicRequestContext) async throws -> T {
        do { return try await request.decode(as: type, context: context) } catch {
            throw Failure(status: .badRequest, message: "bad request body: \(error)")
        }
    }
}
