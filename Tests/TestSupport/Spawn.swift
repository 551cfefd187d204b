import Foundation

/// Runs a command with posix_spawn and waitpid; its exit status, or -1. (Foundation's `Process` can miss the exit of a
/// command that left a daemon behind, like `runuser … pg_ctl start`, and wait forever.)
public func spawnAndWait(_ argv: [String]) -> Int32 {
    var pid: pid_t = 0
    let arguments = argv.map { strdup($0) } + [nil]
    defer { for argument in arguments { free(argument) } }
    guard posix_spawn(&pid, argv[0], nil, nil, arguments, environ) == 0 else { return -1 }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) == -1, errno == EINTR {}
    return (status & 0x7f) == 0 ? (status >> 8) & 0xff : -1
}

/// ``spawnAndWait`` on a thread of its own: an async caller does not hold one of the few cooperative threads meanwhile.
public func spawnAndWaitDetached(_ argv: [String]) async -> Int32 {
    await withCheckedContinuation { continuation in
        Thread { continuation.resume(returning: spawnAndWait(argv)) }.start()
    }
}
