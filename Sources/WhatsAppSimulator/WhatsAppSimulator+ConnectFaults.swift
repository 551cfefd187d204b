import NIOCore
import WhatsApp

/// A step of a new connection the server leaves unanswered, before any WhatsApp stanza (`armConnectFault`).
public enum SimulatedConnectFault: String, Sendable, CaseIterable, Codable {
    /// The TCP (and TLS) connection is accepted; the WebSocket upgrade request is never answered.
    case upgradeUnanswered = "upgrade_unanswered"
    /// The WebSocket is upgraded; the ClientHello is never answered.
    case helloUnanswered = "hello_unanswered"
}

extension WhatsAppSimulator {
    /// Leaves that step of the next `count` connections to arrive unanswered (0 disarms); which account they are is
    /// unknown until the handshake, so they are whoever connects next.
    public func armConnectFault(_ fault: SimulatedConnectFault, count: Int = 1) {
        counters.connectFaultsArmed[fault.rawValue] = max(0, count)
    }

    /// True when an armed `fault` takes this connection (and counts it; open once `connectFaultHeld` says so).
    func takeConnectFault(_ fault: SimulatedConnectFault) -> Bool {
        guard counters.connectFaultsArmed[fault.rawValue, default: 0] > 0 else { return false }
        counters.connectFaultsArmed[fault.rawValue, default: 1] -= 1
        counters.connectFaultsMet[fault.rawValue, default: 0] += 1
        if fault != .upgradeUnanswered { counters.connectFaultsOpen += 1 }
        return true
    }

    /// A held upgrade watches for its client's close from now on: counted open only then, so a client that gives up
    /// once it is seen open is always seen closing.
    func connectFaultHeld() {
        counters.connectFaultsOpen += 1
    }

    /// A connection a connect fault took has closed; `byClient`: the client closed it (not the server's own limit).
    func connectFaultEnded(byClient: Bool) {
        counters.connectFaultsOpen -= 1
        if byClient { counters.connectFaultsClosedByClient += 1 }
    }

    /// Holds an upgrade request unanswered until the client closes the socket, or for `longestStall` at most.
    nonisolated func holdUpgradeUnanswered(on channel: any Channel) async {
        // The server keeps a half-closed socket open; the client's close shows as the end of its input.
        try? await channel.eventLoop.submit { try channel.pipeline.syncOperations.addHandler(CloseOnInputEnd(), position: .first) }.get()
        await connectFaultHeld()
        let closedByClient = await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                try? await channel.closeFuture.get()
                return true
            }
            group.addTask {
                try? await Task.sleep(for: longestStall)
                return false
            }
            defer { group.cancelAll() }
            return await group.next() ?? false
        }
        if !closedByClient { try? await channel.close() }
        await connectFaultEnded(byClient: closedByClient)
    }

    /// Reads and drops what an upgraded connection sends until it closes (the ClientHello goes unanswered); the
    /// simulator's stop ends the wait too.
    nonisolated func holdHelloUnanswered(_ frames: inout FrameReader) async {
        var closedByClient = false
        do {
            while try await frames.next() != nil {}
            closedByClient = !Task.isCancelled
        } catch {
            closedByClient = !Task.isCancelled
        }
        await connectFaultEnded(byClient: closedByClient)
    }
}

/// Closes a socket whose peer ended its input (the server side allows half-closed sockets).
private final class CloseOnInputEnd: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .inputClosed? = event as? ChannelEvent { context.close(promise: nil) }
        context.fireUserInboundEventTriggered(event)
    }
}
