import Foundation
import TestSupport
import Testing

@Suite(.serialized) struct SchemaConformanceTests {
    /// PyPI `schemathesis` drives every documented operation with generated input, as a tenant and as the operator:
    /// no response may be a server error or violate the committed OpenAPI document.
    @Test func schemathesisFindsNoServerErrorAndNoSchemaViolation() async throws {
        guard let python = ExternalTools.python else {
            if ExternalTools.required { Issue.record("WAHOST_TEST_PYTHON is not set; ./ops/test installs schemathesis") }
            return
        }
        let schemathesis = URL(fileURLWithPath: python).deletingLastPathComponent().appendingPathComponent("schemathesis").path
        guard FileManager.default.isExecutableFile(atPath: schemathesis) else {
            Issue.record("schemathesis is not installed next to \(python)")
            return
        }
        let rig = try await APIRig()
        // Generated requests include bad tokens by design; without this the address lockout answers 429 to the rest.
        rig.extraEnvironment["WAHOST_LOCKOUT_MAX_FAILURES"] = "1000000"
        defer { Task { await rig.stopAll() } }
        let (token, _) = try await rig.createTenant("alpha")
        _ = try await rig.createTenant("bravo", mfa: true)
        let operatorResult = try await WahostBinary.runDetached(["operator", "rotate-token", "--data-dir", rig.dataDirectory], environment: rig.environment)
        let operatorToken = try #require(try WahostBinary.json(operatorResult)["operator_token"] as? String)
        let (_, port) = try await rig.startServer()

        // The tenant first (the operator run rotates tokens and deletes tenants).
        for (label, header) in [("tenant", token), ("operator", operatorToken)] {
            let result = try await runProcessDetached(
                schemathesis,
                [
                    "run", "http://127.0.0.1:\(port)/openapi.json",
                    "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
                    "--header", "x-admin-token: \(header)", "--max-examples", "25", "--workers", "1", "--request-timeout", "30",
                    "--seed", "1", "--suppress-health-check", "all",
                    // `/events` answers JSON pages with this (without it, a stream that does not end); EventsAPITests reads streams.
                    "--header", "accept: application/json",
                ],
                environment: ProcessInfo.processInfo.environment.merging(["NO_COLOR": "1", "SCHEMATHESIS_WAIT_FOR_SCHEMA": "10"]) { $1 })
            #expect(result.status == 0, "schemathesis as \(label) found problems:\n\(result.stdout.suffix(6000))\n\(result.stderr.suffix(2000))")
        }
        #expect(try await http("GET", port, "/healthz").status == 200, "still serving")
    }
}
