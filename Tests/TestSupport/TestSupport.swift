import Foundation

/// The external tools `./ops/test` provides, read from the environment.
public enum ExternalTools {
    /// True when `./ops/test` runs the suite: then a missing tool is a failure, not a skip.
    public static var required: Bool { ProcessInfo.processInfo.environment["WAHOST_TEST_REQUIRE_EXTERNAL"] == "1" }

    /// The venv Python with argon2-cffi, pyotp and friends, if set up.
    public static var python: String? { ProcessInfo.processInfo.environment["WAHOST_TEST_PYTHON"] }

    /// Whether tests that need Python should run (they fail loudly when required but missing).
    public static var pythonEnabled: Bool { python != nil || required }

    /// PostgreSQL connection settings from `POSTGRES_*`, if a server was started.
    public static var postgres: (host: String, port: Int, user: String, database: String)? {
        let environment = ProcessInfo.processInfo.environment
        guard let host = environment["POSTGRES_HOSTNAME"], let port = environment["POSTGRES_PORT"].flatMap(Int.init),
            let user = environment["POSTGRES_USER"], let database = environment["POSTGRES_DB"]
        else { return nil }
        return (host, port, user, database)
    }

    /// Whether tests that need PostgreSQL should run.
    public static var postgresEnabled: Bool { postgres != nil || required }
}

/// A process run to completion.
public struct ProcessResult: Sendable {
    /// Exit status.
    public let status: Int32
    /// Captured standard output.
    public let stdout: String
    /// Captured standard error.
    public let stderr: String
}

/// Runs `executable` with `arguments`, feeding `stdin`, and waits for it.
public func runProcess(
    _ executable: String, _ arguments: [String], stdin: String = "", environment: [String: String]? = nil
) throws -> ProcessResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let environment { process.environment = environment }
    let input = Pipe()
    let output = Pipe()
    let error = Pipe()
    process.standardInput = input
    process.standardOutput = output
    process.standardError = error
    try process.run()
    input.fileHandleForWriting.write(Data(stdin.utf8))
    try input.fileHandleForWriting.close()
    // Read both pipes to the end before waiting, so a chatty child cannot block on a full pipe.
    let errorData = LockedData()
    let errorReader = Thread { errorData.set(error.fileHandleForReading.readDataToEndOfFile()) }
    errorReader.start()
    let outputData = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    while !errorData.isSet { usleep(1000) }
    return ProcessResult(
        status: process.terminationStatus, stdout: String(decoding: outputData, as: UTF8.self),
        stderr: String(decoding: errorData.value, as: UTF8.self))
}

/// Runs a Python snippet with the test venv's interpreter.
public func runPython(_ script: String, arguments: [String] = [], stdin: String = "") throws -> ProcessResult {
    guard let python = ExternalTools.python else { throw TestSupportError("WAHOST_TEST_PYTHON is not set; run ./ops/test") }
    return try runProcess(python, ["-c", script] + arguments, stdin: stdin)
}

/// A fresh empty directory under the system temp directory.
public func makeTemporaryDirectory(_ label: String = "wahost-test") throws -> String {
    let path = NSTemporaryDirectory() + "/\(label)-\(UUID().uuidString.lowercased())"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// A failure in test set-up.
public struct TestSupportError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

private final class LockedData: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    private var done = false

    func set(_ value: Data) {
        lock.lock()
        data = value
        done = true
        lock.unlock()
    }

    var isSet: Bool {
        lock.lock()
        defer { lock.unlock() }
        return done
    }

    var value: Data {
        lock.lock()
        defer { lock.unlock() }
        return data
    }
}

/// `runProcess` on a thread of its own, so an async test waiting for a long child (a browser, schemathesis) does
/// not hold one of the few cooperative-pool threads that the servers and simulators in this process need.
public func runProcessDetached(
    _ executable: String, _ arguments: [String], stdin: String = "", environment: [String: String]? = nil
) async throws -> ProcessResult {
    try await withCheckedThrowingContinuation { continuation in
        Thread {
            continuation.resume(with: Result { try runProcess(executable, arguments, stdin: stdin, environment: environment) })
        }.start()
    }
}

/// Another process holding `BEGIN EXCLUSIVE` on an SQLite file until it is released (python's sqlite3).
public final class SQLiteLockHolder: @unchecked Sendable {
    private let process = Process()
    private let input = Pipe()

    /// Takes the lock and returns once it is held.
    public init(path: String) throws {
        let output = Pipe()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        let script = """
            import sqlite3, sys
            db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
            db.execute("BEGIN EXCLUSIVE")
            print("locked", flush=True)
            sys.stdin.readline()
            db.execute("ROLLBACK")
            """
        process.arguments = ["python3", "-c", script, path]
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        let line = String(decoding: output.fileHandleForReading.availableData, as: UTF8.self)
        guard line.hasPrefix("locked") else { throw TestSupportError("could not lock \(path)") }
    }

    public func release() {
        input.fileHandleForWriting.write(Data("\n".utf8))
        process.waitUntilExit()
    }
}
