import WABinary
import WahostBasics

/// The Signal state saves of a client still waiting for their commit, oldest first: a connection decrypts its next
/// message while the previous one's save is pending, and acks each message only once the save holding it is durable.
struct SignalSaves {
    /// A queued save and what waits for it.
    struct Pending {
        var number: UInt64
        /// The connection it was made on; its stanzas are acked only on that connection.
        var connection: UInt64
        /// The receipt and the ack to send once durable (none for a send's save).
        var stanzas: [Node]
        var consumedPreKeys: Set<UInt32>
        var outcome: Result<Void, any Error>?
    }

    /// At most this many saves of received messages wait for their commit; the next message waits for room.
    static let limit = 8

    /// The saves of this connection build on each other; a new connection starts a new chain.
    var chain = WriteChain()
    var pending: [Pending] = []
    /// What the pending saves wrote, newest per record, with the save that wrote it: loads see it before the store.
    var written: [SignalRecordKey: (bytes: [UInt8]?, save: UInt64)] = [:]
    var nextNumber: UInt64 = 0
    /// Someone is sending the acks of settled saves (one at a time, in order).
    var acking = false
    /// Received messages waiting for room, and whoever waits for every save to settle.
    var roomWaiters: [CheckedContinuation<Void, Never>] = []

    /// Records a save about to be queued; returns its number.
    mutating func add(_ changes: [SignalRecordKey: [UInt8]?], connection: UInt64, stanzas: [Node], consumedPreKeys: Set<UInt32>) -> UInt64 {
        nextNumber += 1
        for (key, bytes) in changes { written[key] = (bytes, nextNumber) }
        pending.append(Pending(number: nextNumber, connection: connection, stanzas: stanzas, consumedPreKeys: consumedPreKeys))
        return nextNumber
    }

    /// Takes the oldest save once it settled; what it wrote is the store's to serve from then on (or, when it
    /// failed, nobody's: the connection ends and the next starts from the store).
    mutating func takeSettled() -> Pending? {
        guard let first = pending.first, first.outcome != nil else { return nil }
        pending.removeFirst()
        written = written.filter { $0.value.save != first.number }
        return first
    }

    /// Wakes whoever waits for room or for the saves to settle.
    mutating func wakeWaiters() {
        let waiters = roomWaiters
        roomWaiters = []
        for waiter in waiters { waiter.resume() }
    }
}
