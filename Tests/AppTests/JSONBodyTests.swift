import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Testing
import WahostBasics

@testable import AdminAPI

/// The hand-written JSON bodies parse back, with Foundation's parser, to exactly what was written.
@Suite struct JSONBodyTests {
    @Test(arguments: [
        "", "plain", "quote \" and backslash \\", "line\nbreak\r\ttab", "\u{0}\u{1}\u{1F}\u{7F}", "ünïcödé ✓ 🎉", "</script>",
        "a\u{2028}b", String(repeating: "x", count: 10_000),
    ])
    func stringsRoundTrip(_ value: String) throws {
        let body = JSONBody.object([
            "value": .string(value), "none": .string(nil), "flag": .bool(true), "count": .int(-42), "list": .strings([value, "b"]),
        ])
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(body.string.utf8)) as? [String: Any])
        #expect(parsed["value"] as? String == value)
        #expect(parsed["none"] is NSNull)
        #expect(parsed["flag"] as? Bool == true)
        #expect(parsed["count"] as? Int == -42)
        #expect(parsed["list"] as? [String] == [value, "b"])
        #expect(body.string.unicodeScalars.allSatisfy { $0.value >= 0x20 }, "no raw control characters")
    }

    @Test func arraysKeepOrderAndFieldOrder() throws {
        let body = JSONBody.array([["id": .string("1"), "n": .int(0)], ["id": .string("2"), "n": .int(7)]])
        #expect(body.string == #"[{"id":"1","n":0},{"id":"2","n":7}]"#)
        #expect(JSONBody.array([]).string == "[]")
        let response = body.response()
        #expect(response.headers[.contentType] == "application/json; charset=utf-8")
    }
}
