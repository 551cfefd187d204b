import Hummingbird
import NIOCore

/// A small JSON body written directly (RFC 8259 escaping), for the endpoints that answer most often.
///
/// `status` spent a seventh of its CPU in JSONEncoder's generic machinery; these bodies are a handful of fields.
struct JSONBody {
    private var text = ""
    private var needsComma = false

    /// An object of `fields`, written in order; nil values are written as `null`.
    static func object(_ fields: KeyValuePairs<String, JSONValue>) -> JSONBody {
        var body = JSONBody()
        body.appendObject(fields)
        return body
    }

    /// An array of objects.
    static func array(_ objects: [KeyValuePairs<String, JSONValue>]) -> JSONBody {
        var body = JSONBody()
        body.text = "["
        for (index, fields) in objects.enumerated() {
            if index > 0 { body.text += "," }
            body.appendObject(fields)
        }
        body.text += "]"
        return body
    }

    /// The body as a 200 response (or `status`) with the JSON content type Hummingbird's encoder uses.
    func response(status: HTTPResponse.Status = .ok) -> Response {
        Response(
            status: status, headers: [.contentType: "application/json; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    /// The JSON text.
    var string: String { text }

    private mutating func appendObject(_ fields: KeyValuePairs<String, JSONValue>) {
        text += "{"
        var first = true
        for (name, value) in fields {
            if !first { text += "," }
            first = false
            Self.appendString(name, to: &text)
            text += ":"
            switch value {
            case .string(let string?): Self.appendString(string, to: &text)
            case .string(nil): text += "null"
            case .bool(let flag): text += flag ? "true" : "false"
            case .int(let number): text += String(number)
            }
        }
        text += "}"
    }

    /// Appends `string` quoted: `"` and `\` escaped, control characters as `\n`, `\r`, `\t` or `\u00XX`.
    static func appendString(_ string: String, to text: inout String) {
        text += "\""
        var plainStart = string.unicodeScalars.startIndex
        var index = plainStart
        let scalars = string.unicodeScalars
        while index != scalars.endIndex {
            let scalar = scalars[index]
            let escape: String?
            switch scalar {
            case "\"": escape = "\\\""
            case "\\": escape = "\\\\"
            case "\n": escape = "\\n"
            case "\r": escape = "\\r"
            case "\t": escape = "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                escape = "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: escape = nil
            }
            if let escape {
                text += String(scalars[plainStart..<index])
                text += escape
                plainStart = scalars.index(after: index)
            }
            index = scalars.index(after: index)
        }
        text += String(scalars[plainStart..<scalars.endIndex])
        text += "\""
    }
}

/// A field value of a ``JSONBody``.
enum JSONValue {
    case string(String?)
    case bool(Bool)
    case int(Int)
}
