import Foundation
import Logging
import NIOCore
import WABinary
import WahostBasics

/// Keepalive and prekey upkeep of a logged-in connection, and the credential writes they make.
extension WhatsAppClient {
    /// Arms connection `number`'s next keepalive ping, a random 20–30 s from now (docs/protocol-notes.md#keepalive).
    func scheduleKeepalive(on number: UInt64) {
        let bounds = configuration.keepaliveInterval
        let interval = Duration.milliseconds(Int64.random(in: bounds.lowerBound.wholeMilliseconds...bounds.upperBound.wholeMilliseconds))
        guard connection?.number == number else { return }
        connection?.keepalive = configuration.timers.schedule(interval) { [weak self] in
            Task { await self?.keepalive(connection: number) }
        }
    }

    /// Pings and re-arms; a ping unanswered within the deadline ends the connection.
    func keepalive(connection number: UInt64) async {
        guard let connection, connection.number == number, connection.machine.loggedIn else { return }
        do {
            _ = try await request(on: number, timeout: configuration.keepaliveDeadline) { Stanzas.keepalivePing(id: $0) }
        } catch let error as WhatsAppClientError where error == .timedOut {
            if self.connection?.number == number { await end(.keepaliveTimeout) }
            return
        } catch {
            return
        }
        scheduleKeepalive(on: number)
    }

    /// Runs `work` as the connection's prekey task, given the connection's number. A finished task's handle would keep
    /// the task's memory (its allocator slabs) for the whole connection, so the handle is dropped when the work ends;
    /// `finish` cancels and awaits a task still running, so none outlives its connection.
    func startPreKeyTask(_ work: @escaping @Sendable (WhatsAppClient, UInt64) async -> Void) {
        guard let connectionNumber = connection?.number else { return }
        // One at a time: a refill asked for while a check runs starts after it (two would hand out the same ids).
        let previous = connection?.preKeyCheck?.task
        preKeyTasksStarted &+= 1
        let number = preKeyTasksStarted
        connection?.preKeyCheck = (number, Task { [weak self] in
            await previous?.value
            guard let self, !Task.isCancelled else { return }
            await work(self, connectionNumber)
            await self.preKeyTaskEnded(number)
        })
    }

    func preKeyTaskEnded(_ number: UInt64) {
        if connection?.preKeyCheck?.number == number { connection?.preKeyCheck = nil }
    }

    /// After login: asks how many prekeys the server holds and uploads a batch when it runs low (docs/protocol-notes.md#prekeys).
    func checkPreKeys(on number: UInt64) async {
        do {
            let count = try Stanzas.parsePreKeyCount(try await request(on: number) { Stanzas.preKeyCount(id: $0) })
            guard let batch = PreKeyPolicy.batch(serverHolds: count) else { return }
            await uploadPreKeys(count: batch, on: number)
        } catch {
            logger.warning("prekey count query failed", metadata: ["error": "\(error)"])
        }
    }

    /// Generates `count` prekeys, stores them (private halves included) before uploading their public halves on
    /// connection `number`; does nothing once that connection has ended.
    func uploadPreKeys(count: Int, on number: UInt64) async {
        guard let firstID = credentials.map({ $0.nextPreKeyID ?? 1 }), connection?.number == number, !Task.isCancelled else { return }
        let epoch = credentialEpoch.current
        // Off the actor: 812 key pairs would hold up the connection's stanzas and keepalive answers meanwhile.
        let keys = await Task.detached { PreKey.generate(count: count, firstID: firstID) }.value
        guard var credentials, connection?.number == number, !Task.isCancelled else { return }
        do {
            // Under the Signal state: a received pkmsg removes its prekey from the same file, read and written whole,
            // and the later of two interleaved writes would drop the other's change (the new keys, or the removal).
            await acquireSignalState()
            let saved: Bool
            do { saved = try await writeCredentials(since: epoch, { try await store.savePreKeys(keys) }) } catch {
                releaseSignalState()
                throw error
            }
            releaseSignalState()
            guard saved else { return }
            credentials.nextPreKeyID = (keys.last?.id ?? 0) % PreKey.maximumID + 1
            guard try await writeCredentials(since: epoch, { [credentials] in try await store.save(credentials) }) else { return }
            self.credentials = credentials
            _ = try await request(on: number) {
                Stanzas.preKeyUpload(
                    id: $0, registrationID: credentials.registrationID, identityPublicKey: credentials.identityKey.publicKey, preKeys: keys,
                    signedPreKey: credentials.signedPreKey)
            }
            logger.info("uploaded prekeys", metadata: ["count": "\(count)"])
        } catch {
            logger.warning("prekey upload failed", metadata: ["error": "\(error)"])
        }
    }

    /// Wipes the stored credentials. Writes in flight see the new epoch and wipe again after themselves; with
    /// `joiningWrites` (a logout, whose caller needs the wipe to succeed) the connection's prekey task is first ended
    /// and awaited, so no file appears beside the wipe. The read loop does not join: it must go on closing the socket.
    func wipeCredentials(joiningWrites: Bool) async throws {
        credentialEpoch.advance()
        credentials = nil
        guard joiningWrites else { return try await store.wipe() }
        // The connection is ending: its requests are moot. Failing them first means the task cannot wait on the reads.
        connection?.failPendingRequests()
        await connection?.joinPreKeyTask()
        try await store.wipe()
    }

    func wipeStore() async {
        do { try await store.wipe() } catch { logger.error("credential wipe failed", metadata: ["error": "\(error)"]) }
    }

    /// Runs one credential write unless a wipe came since `epoch`; when a wipe came while it ran (the store's
    /// writes and wipe run concurrently), wipes again, so a prekey upload racing a logout cannot bring files back.
    /// Returns whether the credentials still stand.
    func writeCredentials(since epoch: UInt64, _ write: () async throws -> Void) async throws -> Bool {
        guard credentialEpoch.admits(epoch), !Task.isCancelled else { return false }
        try await write()
        guard credentialEpoch.admits(epoch) else {
            await wipeStore()
            return false
        }
        return true
    }
}
