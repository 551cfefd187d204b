import Foundation
import Hummingbird
import NIOCore
import SessionPool

/// `/healthz`, `/readyz`, `/metrics`, `/openapi.json`.
struct HealthRoutes {
    let dependencies: AdminAPIDependencies

    struct Health: ResponseEncodable {
        let status: String
    }

    struct Readiness: ResponseEncodable {
        let status: String
        let storage: String
        let backend: String
        let sessions: String
    }

    func register(on router: Router<AdminRequestContext>) {
        let dependencies = self.dependencies
        router.get("healthz") { _, _ in Health(status: "ok") }
        router.get("readyz") { _, _ -> EditedResponse<Readiness> in
            let storage = await dependencies.storageReachable()
            let restored = await dependencies.pool.isRestored
            let ready = storage && restored
            return EditedResponse(
                status: ready ? .ok : .serviceUnavailable,
                response: Readiness(
                    status: ready ? "ready" : "not_ready", storage: storage ? "ok" : "unreachable", backend: dependencies.backendName,
                    sessions: restored ? "restored" : "restoring"))
        }
        router.get("metrics") { _, _ -> Response in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: dependencies.metricsText())))
        }
        router.get("openapi.json") { _, _ -> Response in
            Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(bytes: OpenAPIDocument.bytes)))
        }
    }
}

/// The committed OpenAPI 3.1 document (`Sources/AdminAPI/Resources/openapi.json`).
public enum OpenAPIDocument {
    /// The document's bytes, read once from the module's resources.
    public static let bytes: [UInt8] = {
        guard let url = Bundle.module.url(forResource: "openapi", withExtension: "json"), let data = try? Data(contentsOf: url) else {
            return Array(#"{"openapi":"3.1.0","info":{"title":"wahost","version":"missing"},"paths":{}}"#.utf8)
        }
        return Array(data)
    }()
}
