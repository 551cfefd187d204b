import Foundation
import Hummingbird
import Logging
import Storage
import Tenancy

/// `GET /healthz` body.
struct HealthResponse: ResponseCodable {
    let status: String
}

/// `GET /readyz` body.
struct ReadinessResponse: ResponseCodable {
    let status: String
    let storage: String
    let backend: String
}

/// Builds the HTTP application over opened services: health and readiness for now; the session API joins later.
public func buildApplication(services: WahostServices, logger: Logger) -> some ApplicationProtocol {
    let router = Router()
    router.get("healthz") { _, _ in HealthResponse(status: "ok") }
    router.get("readyz") { _, _ -> EditedResponse<ReadinessResponse> in
        let store = services.store
        do {
            try await store.ping()
            return EditedResponse(status: .ok, response: ReadinessResponse(status: "ready", storage: "ok", backend: store.backendName))
        } catch {
            logger.warning("readiness check failed", metadata: ["error": "\(error)"])
            return EditedResponse(
                status: .serviceUnavailable, response: ReadinessResponse(status: "not_ready", storage: "unreachable", backend: store.backendName))
        }
    }
    return Application(
        router: router,
        configuration: .init(address: .hostname(services.configuration.host, port: services.configuration.port), serverName: "wahost"),
        logger: logger
    )
}
