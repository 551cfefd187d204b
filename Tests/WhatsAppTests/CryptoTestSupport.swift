import Foundation
import TestSupport
import Testing

/// Bytes from a hex string (test literals only).
func bytesFromHex(_ hex: String) -> [UInt8] {
    var bytes: [UInt8] = []
    var iterator = hex.makeIterator()
    while let high = iterator.next(), let low = iterator.next() {
        guard let byte = UInt8(String([high, low]), radix: 16) else { return [] }
        bytes.append(byte)
    }
    return bytes
}

/// Lower-case hex of `bytes`.
func hexOf(_ bytes: [UInt8]) -> String {
    bytes.map { String(format: "%02x", $0) }.joined()
}

/// Absolute path of a script in `Tests/WhatsAppTests/python/`.
func pythonScriptPath(_ name: String, filePath: String = #filePath) -> String {
    URL(fileURLWithPath: filePath).deletingLastPathComponent().appendingPathComponent("python").appendingPathComponent(name).path
}

/// The test venv's Python; fails the test when Python is required but `WAHOST_TEST_PYTHON` is unset.
func requireTestPython() throws -> String {
    guard let python = ExternalTools.python else {
        throw TestSupportError("WAHOST_TEST_PYTHON is not set but WAHOST_TEST_REQUIRE_EXTERNAL=1; run ./ops/test")
    }
    return python
}
