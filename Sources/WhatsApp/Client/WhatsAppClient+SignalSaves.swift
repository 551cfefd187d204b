import Foundation
import WABinary
import WahostBasics

/// Signal state saves queued in order on the connection's `WriteChain` (`SignalSaves`): a received message's receipt
/// and ack go once the save holding it is durable, while the read loop goes on to the next message.
extension WhatsAppClient {
    /// The records of `keys`: what a pending save wrote, the rest from the store.
    func loadSignalRecords(_ keys: [SignalRecordKey], from store: any SignalRecordStore) async throws -> [SignalRecordKey: [UInt8]] {
        var loaded: [SignalRecordKey: [UInt8]] = [:]
        var missing: [SignalRecordKey] = []
        for key in keys {
            guard let written = signalSaves.written[key] else {
                missing.append(key)
                continue
            }
            if let bytes = written.bytes { loaded[key] = bytes }
        }
        guard !missing.isEmpty else { return loaded }
        return loaded.merging(try await store.load(missing)) { pending, _ in pending }
    }

    /// Saves Signal state durably after every save queued before it (a send's, a retry answer's); returns once durable.
    func saveSignalState(_ changes: [SignalRecordKey: [UInt8]?], to store: any SignalRecordStore) async throws {
        try await store.save(changes, chain: signalSaves.chain)
    }

    /// Queues a received message's Signal state with its event; `stanzas` (its receipt and ack) are sent once durable.
    /// A save that fails ends the connection unacknowledged, and the saves queued after it fail unwritten.
    func queueSave(_ changes: [SignalRecordKey: [UInt8]?], event: InboxEvent, stanzas: [Node], consumedPreKeys: Set<UInt32>, to store: any SignalRecordStore) async {
        guard let connectionNumber = connection?.number else { return }
        let chain = signalSaves.chain
        let number = signalSaves.add(changes, connection: connectionNumber, stanzas: stanzas, consumedPreKeys: consumedPreKeys)
        do {
            try await store.submit(changes, with: [event], chain: chain) { [weak self] outcome in
                Task { await self?.saveSettled(number, outcome) }
            }
        } catch {
            chain.breakOff()
            await saveSettled(number, .failure(error))
        }
    }

    /// Waits while `SignalSaves.limit` saves are pending (the read loop's next message waits here).
    func waitForSaveRoom() async {
        while signalSaves.pending.count >= SignalSaves.limit { await withCheckedContinuation { signalSaves.roomWaiters.append($0) } }
    }

    /// At a connection's end: fails what was not committed yet, waits for every pending save to settle, and starts a
    /// new chain, so the next connection reads only what is in the store.
    func settleSignalSaves() async {
        signalSaves.chain.breakOff()
        while !signalSaves.pending.isEmpty { await withCheckedContinuation { signalSaves.roomWaiters.append($0) } }
        signalSaves.chain = WriteChain()
        signalSaves.written = [:]
    }

    /// Notes a save's outcome and sends, in order, the receipts and acks of the saves settled so far.
    private func saveSettled(_ number: UInt64, _ outcome: Result<Void, any Error>) async {
        if let index = signalSaves.pending.firstIndex(where: { $0.number == number }) { signalSaves.pending[index].outcome = outcome }
        guard !signalSaves.acking else { return }
        signalSaves.acking = true
        while let save = signalSaves.takeSettled() {
            signalSaves.wakeWaiters()
            guard save.connection == connection?.number, let outcome = save.outcome else { continue }
            do {
                try outcome.get()
                if !save.consumedPreKeys.isEmpty {
                    // Under the Signal state: a prekey refill reads, changes and writes the same file (PreKeyFileRaceTests).
                    await acquireSignalState()
                    defer { releaseSignalState() }
                    try await store.removePreKeys(save.consumedPreKeys)
                }
            } catch {
                _ = await storesUnavailable("the message or its Signal state cannot be stored: \(error)")
                continue
            }
            guard save.connection == connection?.number else { continue }
            try? send(together: save.stanzas)
        }
        signalSaves.acking = false
    }
}
