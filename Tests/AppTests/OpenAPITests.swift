import AdminAPI
import App
import Foundation
import Hummingbird
import Logging
import TestSupport
import Testing

@Suite struct OpenAPITests {
    /// Every API route the router serves is in the committed document, and every path and method of the document is
    /// served. The HTML dashboard under `/dashboard` is not part of the JSON API contract.
    @Test func theDocumentAndTheRouterAgree() async throws {
        let services = try await WahostServices.open(WahostConfiguration(dataDirectory: try makeTemporaryDirectory()), logger: Logger(label: "test"))
        defer { Task { await services.close() } }
        let pool = try makeSessionPool(services: services, logger: Logger(label: "test"))
        let router = try buildRouter(services: services, pool: pool, logger: Logger(label: "test"))
        let served = Set(
            router.routes.filter { !$0.path.description.hasPrefix("/dashboard") }.map { route in
                let path = route.path.description.split(separator: "/").map { $0.hasPrefix(":") ? "{\($0.dropFirst())}" : String($0) }
                return "\(route.method.rawValue.lowercased()) /" + path.joined(separator: "/")
            })

        let document = try #require(try JSONSerialization.jsonObject(with: Data(OpenAPIDocument.bytes)) as? [String: Any])
        #expect(document["openapi"] as? String == "3.1.0")
        let paths = try #require(document["paths"] as? [String: [String: Any]])
        let methods: Set<String> = ["get", "put", "post", "delete", "patch", "head", "options", "trace"]
        let documented = Set(paths.flatMap { path, item in item.keys.filter(methods.contains).map { "\($0) \(path)" } })

        #expect(served.subtracting(documented).isEmpty, "served but not documented: \(served.subtracting(documented).sorted())")
        #expect(documented.subtracting(served).isEmpty, "documented but not served: \(documented.subtracting(served).sorted())")
        #expect(served.count >= 20)
    }
}
