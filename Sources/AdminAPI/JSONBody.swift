import Hummingbird
import NIOCore
import WahostBasics

/// A small JSON body written directly (``JSONText``), for the endpoints that answer most often.
///
/// `status` spent a seventh of its CPU in JSONEncoder's generic machinery; these bodies are a handful of fields.
struct JSONBody {
    /// The JSON text.
    let string: String

    /// An object of `fields`, written in order; nil values are written as `null`.
    static func object(_ fields: KeyValuePairs<String, JSONValue>) -> JSONBody {
        JSONBody(string: JSONText.object(fields))
    }

    /// An array of objects.
    static func array(_ objects: [KeyValuePairs<String, JSONValue>]) -> JSONBody {
        JSONBody(string: JSONText.array(objects))
    }

    /// The body as a 200 response (or `status`) with the JSON content type Hummingbird's encoder uses.
    func response(status: HTTPResponse.Status = .ok) -> Response {
        Response(
            status: status, headers: [.contentType: "application/json; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: string)))
    }
}
