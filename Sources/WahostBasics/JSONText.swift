/// Small JSON texts written directly (RFC 8259 escaping), for what is written most often: API answers and events.
/// Foundation's `JSONSerialization` spent a tenth of a message's CPU on a handful of fields.
public enum JSONText {
    /// An object of `fields`, written in order.
    public static func object(_ fields: KeyValuePairs<String, JSONValue>) -> String {
        var text = ""
        appendObject(fields, to: &text)
        return text
    }

    /// An array of objects.
    public static func array(_ objects: [KeyValuePairs<String, JSONValue>]) -> String {
        var text = "["
        for (index, fields) in objects.enumerated() {
            if index > 0 { text += "," }
            appendObject(fields, to: &text)
        }
        return text + "]"
    }

    private static func appendObject(_ fields: KeyValuePairs<String, JSONValue>, to text: inout String) {
        text += "{"
        var first = true
        for (name, value) in fields {
            if !first { text += "," }
            first = false
            appendString(name, to: &text)
            text += ":"
            switch value {
            case .string(let string?): appendString(string, to: &text)
            case .string(nil): text += "null"
            case .bool(let flag): text += flag ? "true" : "false"
            case .int(let number): text += String(number)
            case .strings(let strings):
                text += "["
                for (index, string) in strings.enumerated() {
                    if index > 0 { text += "," }
                    appendString(string, to: &text)
                }
                text += "]"
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

/// A field value of a ``JSONText`` object.
public enum JSONValue: Sendable {
    /// A string, or `null`.
    case string(String?)
    case bool(Bool)
    case int(Int)
    /// An array of strings.
    case strings([String])
}
