import Foundation

/// Runs a command with posix_spawn and waitpid; its exit status, or -1. (Foundation's `Process` can miss the exit of a
/// command that left a daemon behind, like `runuser … pg_ctl start`, and wait forever.)
///
/// The child keeps only stdin, stdout and stderr. Foundation's `Process` learns that a child exited when the last copy
/// of a socket the child holds is closed; a daemon started here that inherited that socket from a concurrent launch
/// would hide the other child's exit for as long as the daemon lives.
public func spawnAndWait(_ argv: [String]) -> Int32 {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    guard closeInheritedDescriptors(&actions) else { return -1 }
    // The calling thread may block signals (Dispatch's threads do); the child starts with none blocked or ignored.
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var noSignals = sigset_t()
    var allSignals = sigset_t()
    sigemptyset(&noSignals)
    sigfillset(&allSignals)
    posix_spawnattr_setsigmask(&attributes, &noSignals)
    posix_spawnattr_setsigdefault(&attributes, &allSignals)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    var pid: pid_t = 0
    let arguments = argv.map { strdup($0) } + [nil]
    defer { for argument in arguments { free(argument) } }
    guard posix_spawn(&pid, argv[0], &actions, &attributes, arguments, environ) == 0 else { return -1 }
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

/// Adds glibc's "close every descriptor from 3 up" to `actions` (done in the child, so nothing opened meanwhile leaks).
private func closeInheritedDescriptors(_ actions: UnsafeMutablePointer<posix_spawn_file_actions_t>) -> Bool {
    typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    // glibc ≥ 2.34 has it; Swift's Glibc module does not declare it (it is a GNU extension).
    guard let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") else {
        FileHandle.standardError.write(Data("spawnAndWait: no posix_spawn_file_actions_addclosefrom_np here (needs glibc 2.34+)\n".utf8))
        return false
    }
    return unsafeBitCast(symbol, to: CloseFrom.self)(actions, 3) == 0
}

extension Process {
    /// Waits for the exit by polling, without holding a thread (`waitUntilExit` blocks one of the cooperative pool's).
    public func exited() async {
        while isRunning { try? await Task.sleep(for: .milliseconds(20)) }
    }
}
