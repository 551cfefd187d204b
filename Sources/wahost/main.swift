import ArgumentParser
import NIOCore
import NIOPosix

// Swift concurrency runs on NIO's event-loop threads instead of a second thread pool: a socket read, the stanza it
// carries and the answer then stay on one thread instead of waking another (docs/benchmarks.md, idle CPU). It must
// happen before the first task reaches the global executor, hence here and not in a command.
_ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()

await runWahost()

/// Parses the command line and runs the command; in an async function `main()` resolves to the async overload,
/// which it does not in top-level code.
func runWahost() async {
    await Wahost.main()
}
