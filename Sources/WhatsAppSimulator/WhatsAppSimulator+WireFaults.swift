import WABinary
import WhatsApp

/// How a live connection misbehaves on the wire, beyond drops and stream errors (`applyWireFault`).
public enum SimulatedWireFault: Sendable, Equatable {
    /// Part of a frame, then nothing: no byte more, and what the client sends is not read (a peer gone mid-write).
    case stallMidFrame
    /// Every answer to the client's requests comes this much later.
    case slowAnswers(Duration)
    /// Pings and other requests go unanswered while the socket stays open.
    case silent
    /// A frame of random bytes: a right length, a body that does not decrypt.
    case garbageFrame
    /// A frame header announcing more bytes than follow; the next frames fill it up.
    case overlongFrame
}

/// A stalled connection's serve loop waits at most this long before closing (a server's own socket timeout).
let longestStall: Duration = .seconds(300)

extension WhatsAppSimulator {
    /// Applies `fault` to every live connection of `user`; returns how many it reached.
    @discardableResult
    public func applyWireFault(_ fault: SimulatedWireFault, toAccount user: String) -> Int {
        let ids = liveConnectionIDs(of: user)
        for id in ids {
            if case .slowAnswers = fault {} else { connections[id]?.endedOrFaultedByServer = true }
            switch fault {
            case .stallMidFrame:
                // A header announcing 200 bytes and 7 of them; later sends of this connection are swallowed.
                connections[id]?.outgoing.yield(.frame([0, 0, 200] + SimulatorRandom.bytes(7)))
                connections[id]?.stalledSince = ContinuousClock.now
            case .slowAnswers(let delay):
                let longest = max(delay, connections[id]?.longestAnswerDelay ?? .zero)
                connections[id]?.answerDelay = delay
                connections[id]?.longestAnswerDelay = longest
            case .silent: connections[id]?.muted = true
            case .garbageFrame:
                let body = SimulatorRandom.bytes(Int.random(in: 1...512))
                connections[id]?.outgoing.yield(.frame([0, UInt8(body.count >> 8), UInt8(body.count & 0xff)] + body))
            case .overlongFrame:
                let announced = Int.random(in: 4_096...60_000)
                let header = [UInt8(announced >> 16), UInt8((announced >> 8) & 0xff), UInt8(announced & 0xff)]
                connections[id]?.outgoing.yield(.frame(header + SimulatorRandom.bytes(16)))
            }
        }
        counters.wireFaults += ids.count
        return ids.count
    }

    /// True while connection `id` is stalled: its serve loop then reads nothing more (see `serve`).
    func isStalled(_ id: UInt64) -> Bool {
        guard let since = connections[id]?.stalledSince else { return false }
        return ContinuousClock.now - since < longestStall
    }

    /// Waits while connection `id` is stalled (until a drop, a newer login of its account, or `longestStall`).
    func waitOutStall(_ id: UInt64) async {
        while isStalled(id), !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Answers one request now, after the connection's answer delay, or never on a silent connection.
    func answerUnlessFaulted(_ node: Node, iqID: String, from id: UInt64) async {
        guard connections[id]?.muted != true else { return }
        guard let delay = connections[id]?.answerDelay else { return await answer(node, iqID: iqID, from: id) }
        Task {
            try? await Task.sleep(for: delay)
            await self.answer(node, iqID: iqID, from: id)
        }
    }
}
