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
}
