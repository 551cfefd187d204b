import Foundation
import Logging
import WABinary

/// A pairing in progress on an unpaired connection.
enum PairingSession: Sendable {
    /// QR pairing: the rotation timer shows each ref in turn; `id` tells a current rotation from a cancelled one.
    case qr(rotation: ClientTimer, id: UInt64)
    /// Code pairing: waiting for the phone's notification.
    case linkCode(LinkCodePairing)
}

extension WhatsAppClient {
    /// The platform this companion announces in QR codes and link-code requests.
    static let platformID: CompanionPlatformID = .chrome
    /// The name shown on the phone's "Linked devices" list for code pairing.
    static let platformDisplay = "Chrome (Linux)"

    /// `pair-device`: acknowledge at once, then show the refs as QR codes on the 60 s / 20 s schedule (docs/protocol-notes.md#qr-ref-schedule).
    func handlePairDevice(_ node: Node) async -> DisconnectReason? {
        guard let credentials else { return nil }
        let request: PairDeviceRequest
        do { request = try PairDeviceRequest(parsing: node) } catch {
            logger.warning("malformed pair-device", metadata: ["error": "\(error)"])
            return .streamError(code: nil, condition: "malformed pair-device")
        }
        try? send(request.acknowledgement)
        if case .qr(let previous, _)? = connection?.pairing { previous.cancel() }
        let schedule = QRRefSchedule(refs: request.refs)
        let codes = request.refs.map { PairingQRCode(ref: $0, credentials: credentials, platformID: Self.platformID).text }
        qrRotationsStarted &+= 1
        if let number = connection?.number { await showQRCode(codes, from: 0, schedule: schedule, rotation: qrRotationsStarted, on: number) }
        return nil
    }

    /// Shows QR code `index` of connection `number` and arms the timer for the next; after the last, pairing has timed out.
    /// A timer that fired just before its rotation was cancelled (pairing done, new refs, link code) finds another
    /// rotation id, or none, and does nothing.
    func showQRCode(_ codes: [String], from index: Int, schedule: QRRefSchedule, rotation id: UInt64, on number: UInt64) async {
        guard connection?.number == number else { return }
        if index > 0 {
            guard case .qr(_, let current)? = connection?.pairing, current == id else { return }
        }
        guard index < codes.count else {
            await end(.pairingTimedOut)
            return
        }
        let lifetime = index == 0 ? schedule.firstRefLifetime : schedule.laterRefLifetime
        emit(.qrCode(codes[index], expiresIn: lifetime))
        connection?.pairing = .qr(
            rotation: configuration.timers.schedule(lifetime) { [weak self] in
                Task { await self?.showQRCode(codes, from: index + 1, schedule: schedule, rotation: id, on: number) }
            }, id: id)
    }

    /// `pair-success`: verify, sign, reply, persist; the server then sends 515 (docs/protocol-notes.md#pair-success).
    func handlePairSuccess(_ node: Node) async -> DisconnectReason? {
        guard let credentials else { return nil }
        if case .qr(let rotation, _)? = connection?.pairing {
            rotation.cancel()
            // Before any suspension: a rotation timer that already fired must find no QR pairing to show.
            connection?.pairing = nil
        }
        let pairSuccess: PairSuccess
        let completion: PairingCompletion
        do {
            pairSuccess = try PairSuccess(parsing: node)
            completion = try pairSuccess.complete(credentials: credentials)
        } catch {
            logger.warning("pair-success rejected", metadata: ["error": "\(error)"])
            if let id = node.attributes["id"]?.string { try? send(PairSuccess.errorReply(iqID: id, for: error)) }
            return .streamError(code: nil, condition: "pair-success rejected: \(error)")
        }
        await pairingAccepted?()
        do {
            try await store.save(completion.credentials)
        } catch {
            logger.error("cannot persist paired credentials", metadata: ["error": "\(error)"])
            return .streamError(code: nil, condition: "credential store failed")
        }
        self.credentials = completion.credentials
        try? send(completion.reply)
        connection?.pairing = nil
        logger.info("paired", metadata: ["jid": "\(pairSuccess.jid)"])
        emit(.paired(jid: pairSuccess.jid.description))
        return nil
    }

    /// The phone's link-code notification: derive the key bundle and new ADV secret, persist, send companion_finish
    /// (docs/protocol-notes.md#link-code-companion-finish).
    func handleNotification(_ node: Node) async -> DisconnectReason? {
        guard node.attributes["type"]?.string == "link_code_companion_reg", case .linkCode(let pairing)? = connection?.pairing,
            let credentials
        else { return nil }
        do {
            let hello = try PrimaryHello(parsing: node)
            let completion = try pairing.receivePrimaryHello(hello, identityKey: credentials.identityKey)
            let updated = completion.applied(to: credentials)
            try await store.save(updated)
            self.credentials = updated
            guard var connection else { return nil }
            let id = connection.machine.nextStanzaID()
            self.connection = connection
            try send(completion.companionFinish(iqID: id).node)
        } catch {
            logger.warning("link-code pairing failed", metadata: ["error": "\(error)"])
        }
        return nil
    }

    /// Starts code pairing; returns the code to type on the phone.
    func startLinkCode(phoneNumber: String) async throws -> String {
        guard var connection, let credentials else { throw WhatsAppClientError.notConnected }
        guard credentials.pairedAccount == nil else { throw WhatsAppClientError.alreadyPaired }
        var pairing: LinkCodePairing
        do { pairing = try LinkCodePairing(phoneNumber: phoneNumber) } catch { throw WhatsAppClientError.invalidPhoneNumber("\(error)") }
        let id = connection.machine.nextRequestID()
        self.connection = connection
        let hello = pairing.companionHello(
            iqID: id, credentials: credentials, platformID: Self.platformID, platformDisplay: Self.platformDisplay)
        let response = try await send(requestWithID: id, node: hello.node)
        do { try pairing.receiveHelloResponse(response) } catch { throw WhatsAppClientError.pairing("\(error)") }
        if case .qr(let rotation, _)? = self.connection?.pairing { rotation.cancel() }
        self.connection?.pairing = .linkCode(pairing)
        return pairing.code.rawValue
    }
}
