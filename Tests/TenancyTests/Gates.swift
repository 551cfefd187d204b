import TestSupport

/// Conditions for tests that need tools `./ops/test` installs.
enum ExternalToolsGate {
    static var python: Bool { ExternalTools.pythonEnabled }
}
