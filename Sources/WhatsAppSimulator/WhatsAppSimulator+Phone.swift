import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOSSL
import NIOWebSocket
import SwiftProtobuf
import WABinary
import WAProto
import WhatsApp
import WhatsAppServerSide

// MARK: - The scriptable phone

extension WhatsAppSimulator {
    /// The phone scans a QR string shown by a companion: links it to a new account and completes pair-success → 515.
    /// Returns the companion's new JID (`<number>:<device>@s.whatsapp.net`).
    @discardableResult
    public func scanQRCode(_ text: String) async throws -> String {
        let code = try PairingQRCode(parsing: text)
        guard
            let (id, identityKey) = connections.lazy.compactMap({ id, connection -> (UInt64, [UInt8])? in
                guard case .registering(let identity, let noise, let refs) = connection.phase, refs.contains(code.ref),
                    noise == code.noisePublicKey, identity == code.identityPublicKey
                else { return nil }
                return (id, identity)
            }).first
        else { throw SimulatorError("no connected companion shows this QR code") }
        return try await completePairing(connection: id, identityPublicKey: identityKey, advSecretKey: code.advSecretKey, noisePublicKey: code.noisePublicKey)
    }

    /// The phone enters a link code a companion showed: runs docs/protocol-notes.md#link-code from the phone's side, then pair-success → 515.
    @discardableResult
    public func enterLinkCode(_ code: String) async throws -> String {
        let phone = Curve25519KeyPair.generate()
        for (id, connection) in connections {
            guard var pending = connection.linkCode, case .registering(let identity, let noise, _) = connection.phase else { continue }
            guard let primary = try? LinkCodePrimary(typedCode: code, hello: pending.hello, ref: pending.ref, identityKey: phone) else {
                continue
            }
            pending.primary = primary
            pending.identityPublicKey = identity
            connections[id]?.linkCode = pending
            send(primary.primaryHello.node, to: id)
            let finish = try await waitForCompanionFinish(connection: id)
            let result = try primary.receiveCompanionFinish(finish)
            return try await completePairing(
                connection: id, identityPublicKey: result.companionIdentityPublicKey, advSecretKey: result.advSecretKey, noisePublicKey: noise)
        }
        throw SimulatorError("no companion is waiting for a link code")
    }

    /// The paired account users (phone numbers) the simulator knows.
    public var accountUsers: [String] { accounts.values.map(\.jid.user).sorted() }

    func liveConnectionIDs(of user: String) -> [UInt64] { loggedInConnections[user].map { $0.sorted() } ?? [] }

    /// Moves a connection to `phase`, keeping the index of each user's logged-in connections.
    func setPhase(_ phase: ConnectionPhase, of id: UInt64) {
        guard let old = connections[id]?.phase else { return }
        if case .loggedIn(let user) = old {
            loggedInConnections[user]?.remove(id)
            if loggedInConnections[user]?.isEmpty == true { loggedInConnections[user] = nil }
        }
        connections[id]?.phase = phase
        if case .loggedIn(let user) = phase { loggedInConnections[user, default: []].insert(id) }
    }

    /// The account `user` paired last.
    func account(ofUser user: String) -> SimulatedAccount? { accountKeys[user].flatMap { accounts[$0] } }

    /// Records a paired account under its noise key.
    func addAccount(_ account: SimulatedAccount, key: String) {
        // The same noise key paired again (a client that never learned its first pairing) leaves its old user.
        if let previous = accounts[key]?.jid.user, previous != account.jid.user, accountKeys[previous] == key { accountKeys[previous] = nil }
        accounts[key] = account
        accountKeys[account.jid.user] = key
    }

    /// Forgets every pairing of `user`.
    func removeAccounts(ofUser user: String) {
        accounts = accounts.filter { $0.value.jid.user != user }
        accountKeys[user] = nil
    }

    func completePairing(connection id: UInt64, identityPublicKey: [UInt8], advSecretKey: [UInt8], noisePublicKey: [UInt8])
        async throws -> String
    {
        nextPhoneNumber += 1
        let user = String(nextPhoneNumber)
        let jid = JID.phoneNumber(user, device: 1)
        let lid = JID.lid(String(nextPhoneNumber + 200_000_000_000), device: 1)
        let issuer = PairSuccessIssuer(accountSigningKey: Curve25519KeyPair.generate())
        let iqID = nextIQID()
        let pairSuccess = try issuer.pairSuccess(
            iqID: iqID, companionIdentityPublicKey: identityPublicKey, advSecretKey: advSecretKey, jid: jid, lid: lid, keyIndex: 1,
            timestamp: UInt64(Date().timeIntervalSince1970))
        let reply = try await request(pairSuccess.node, iqID: iqID, to: id)
        _ = try issuer.verifyReply(reply, to: pairSuccess, companionIdentityPublicKey: identityPublicKey)
        let key = noisePublicKey.map { String(format: "%02x", $0) }.joined()
        addAccount(SimulatedAccount(jid: jid, lid: lid, noisePublicKey: noisePublicKey, identityPublicKey: identityPublicKey), key: key)
        // The server restarts the stream after pairing; the companion logs in again.
        send(Node(tag: "stream:error", attributes: ["code": "515"]), to: id)
        await drop(id)
        return jid.description
    }

    func handleLinkCodeStage(_ node: Node, iqID: String, from id: UInt64) async {
        guard let stage = node.child("link_code_companion_reg")?.attributes["stage"]?.string else { return }
        switch stage {
        case "companion_hello":
            do {
                let hello = try CompanionHello(parsing: node)
                let ref = Array("sim-ref-\(iqID)".utf8)
                connections[id]?.linkCode = PendingLinkCode(hello: hello, ref: ref, primary: nil, identityPublicKey: [])
                send(hello.responseNode(ref: ref), to: id)
            } catch {
                send(errorResult(iqID, code: 400, text: "bad-request"), to: id)
            }
        case "companion_finish":
            send(result(iqID), to: id)
            if let finish = try? CompanionFinish(parsing: node) { companionFinishes[id] = finish }
            if let waiter = companionFinishWaiters.removeValue(forKey: id), let finish = companionFinishes.removeValue(forKey: id) {
                waiter.resume(returning: finish)
            }
        default:
            send(errorResult(iqID, code: 400, text: "bad-request"), to: id)
        }
    }

    func errorResult(_ iqID: String, code: Int, text: String) -> Node {
        Node(
            tag: "iq", attributes: ["from": .jid(.whatsappServer), "id": .string(iqID), "type": "error"],
            children: [Node(tag: "error", attributes: ["code": .string(String(code)), "text": .string(text)])])
    }

    func waitForCompanionFinish(connection id: UInt64) async throws -> CompanionFinish {
        if let finish = companionFinishes.removeValue(forKey: id) { return finish }
        return try await withCheckedThrowingContinuation { continuation in
            companionFinishWaiters[id] = continuation
        }
    }
}
