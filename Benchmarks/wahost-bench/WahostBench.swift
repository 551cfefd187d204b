import ArgumentParser
import Foundation

@main
struct WahostBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wahost-bench",
        abstract: "Measures wahost. Each subcommand prints one JSON object last.",
        discussion: "Build both products in release first (`swift build -c release`: the bench starts the `wahost` binary "
            + "next to itself), then `swift run -c release wahost-bench …` or `.build/release/wahost-bench …`.",
        subcommands: [Micro.self, Sessions.self, Restore.self, API.self, Memory.self, Messages.self, Webhooks.self, Chaos.self, Migrate.self])
}

/// Prints one JSON object on one line with sorted keys.
func printJSONLine(_ value: [String: Any]) {
    let data = try! JSONSerialization.data(withJSONObject: value, options: [.sortedKeys])
    print(String(decoding: data, as: UTF8.self))
    fflush(nil)
}

/// Seconds elapsed while running `body`.
func measure(_ body: () throws -> Void) rethrows -> Double {
    let start = ContinuousClock.now
    try body()
    let elapsed = ContinuousClock.now - start
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
}
