import ArgumentParser
import Foundation
import Logging
import WhatsAppSimulator

struct SimCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sim",
        abstract: "Run the WhatsApp protocol simulator (for tests, benchmarks and demos; never a real WhatsApp server).",
        discussion: """
            Prints one JSON object: the ws:// URL and root key to give `wahost serve` (WAHOST_WA_URL, WAHOST_WA_ROOT_KEY),
            and the control API, always plain HTTP (POST /control/scan {"qr"}, /control/link-code {"code"}, GET /control/state, …).
            With --tls-cert and --tls-key the URL is wss://localhost:… on a second port; give `serve` the certificate as
            WAHOST_WA_CA_FILE (it must name localhost).
            Runs until SIGTERM or SIGINT. Bind it to loopback: the control API has no authentication.
            """)

    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on (0 picks a free one).") var port = 0
    @Option(name: .customLong("ws-ping-seconds"), help: "Also send a WebSocket ping on every connection this often (0: never).")
    var webSocketPingSeconds = 0
    @Option(help: "PEM certificate (chain) for a TLS listener; the URL printed is then its wss:// one.") var tlsCert: String?
    @Option(help: "PEM private key of --tls-cert.") var tlsKey: String?

    struct Output: Encodable {
        let url: String
        let root_key: String
        let control: String
    }

    func run() async throws {
        var logger = Logger(label: "wahost.simulator")
        logger.logLevel = ProcessInfo.processInfo.environment["WAHOST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
        let simulator = try WhatsAppSimulator(logger: logger)
        guard (tlsCert == nil) == (tlsKey == nil) else { throw ValidationError("--tls-cert and --tls-key go together") }
        let plainURL = try await simulator.start(
            host: host, port: port, webSocketPing: webSocketPingSeconds > 0 ? .seconds(webSocketPingSeconds) : nil)
        let control = plainURL.replacingOccurrences(of: "ws://", with: "http://").replacingOccurrences(of: "/ws/chat", with: "/control")
        var url = plainURL
        if let tlsCert, let tlsKey {
            url = try await simulator.startTLS(try WhatsAppSimulator.serverTLS(certificateFile: tlsCert, keyFile: tlsKey), host: host)
        }
        try printJSON(Output(url: url, root_key: simulator.rootPublicKey.map { String(format: "%02x", $0) }.joined(), control: control))
        fflush(nil)
        await waitForTermination()
        await simulator.stop()
    }
}

/// Returns when the process receives SIGTERM or SIGINT.
func waitForTermination() async {
    let (stream, continuation) = AsyncStream.makeStream(of: Int32.self)
    var sources: [any DispatchSourceSignal] = []
    for signalNumber in [SIGTERM, SIGINT] {
        signal(signalNumber, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
        source.setEventHandler { continuation.yield(signalNumber) }
        source.resume()
        sources.append(source)
    }
    var iterator = stream.makeAsyncIterator()
    _ = await iterator.next()
    for source in sources { source.cancel() }
}
