import Foundation
import TestSupport
import Testing

/// `spawnAndWait` (used to start PostgreSQL daemons in tests and benches) hands its child no descriptor but the
/// standard three: a daemon holding a copy of the socket Foundation's `Process` watches would hide that child's exit.
@Suite struct SpawnTests {
    @Test func aSpawnedCommandInheritsNoOpenDescriptor() async throws {
        var ends: [Int32] = [0, 0]
        // pipe() sets no close-on-exec, like the socket pair Foundation's `Process` gives each child.
        #expect(pipe(&ends) == 0)
        defer { close(ends[0]); close(ends[1]) }
        let status = await spawnAndWaitDetached(["/bin/sh", "-c", "test ! -e /proc/self/fd/\(ends[0]) && test ! -e /proc/self/fd/\(ends[1])"])
        #expect(status == 0, "the child held descriptor \(ends[0]) or \(ends[1])")
        #expect(await spawnAndWaitDetached(["/bin/sh", "-c", "exit 3"]) == 3, "the exit status comes back")
    }

    /// The failure itself: children launched with `Process` while `spawnAndWait` starts daemons are all seen to exit
    /// (before the fix, 7 of 19 were not, within 3 s: a daemon held their exit socket).
    @Test func processExitsAreSeenWhileDaemonsAreStarted() async throws {
        let marker = "wahost-spawn-test-\(UUID().uuidString)"
        let until = Date().addingTimeInterval(2)
        let daemons = Task.detached {
            while Date() < until { _ = spawnAndWait(["/bin/bash", "-c", "exec -a \(marker) sleep 30 </dev/null >/dev/null 2>&1 &"]) }
        }
        var unseen = 0
        var launched = 0
        while Date() < until {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/true")
            try process.run()
            let deadline = Date().addingTimeInterval(5)
            while process.isRunning, Date() < deadline { try await Task.sleep(for: .milliseconds(5)) }
            launched += 1
            if process.isRunning { unseen += 1 }
        }
        await daemons.value
        _ = await spawnAndWaitDetached(["/usr/bin/pkill", "-f", marker])
        #expect(launched > 0 && unseen == 0, "\(unseen) of \(launched) exits unseen after 5 s (a daemon lives 30 s)")
    }
}
