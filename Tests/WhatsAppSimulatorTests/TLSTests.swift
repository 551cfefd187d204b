import Foundation
import Logging
import NIOSSL
import Storage
import Tenancy
import TestSupport
import Testing
import WhatsApp
import WhatsAppSimulator

/// A self-signed P-256 certificate for `localhost` and its key, made by the openssl command-line tool.
func makeLocalhostCertificate() throws -> (certificate: String, key: String) {
    let directory = try makeTemporaryDirectory()
    let (certificate, key) = (directory + "/cert.pem", directory + "/key.pem")
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
    process.arguments = [
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
        "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost", "-keyout", key, "-out", certificate,
    ]
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    try process.run()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { throw TestSupportError("openssl req failed (\(process.terminationStatus))") }
    return (certificate, key)
}

@Suite(.serialized) struct TLSTests {
    /// A rig whose client reaches the simulator over `wss://` with `trust` as its TLS trust.
    private func tlsRig(trust: (String) throws -> TLSConfiguration) async throws -> (Rig, String) {
        let plain = try await Rig.make()
        let (certificate, key) = try makeLocalhostCertificate()
        let url = try await plain.simulator.startTLS(try WhatsAppSimulator.serverTLS(certificateFile: certificate, keyFile: key))
        var configuration = plain.configuration
        configuration.url = url
        configuration.tlsConfiguration = try trust(certificate)
        return (Rig(simulator: plain.simulator, store: plain.store, files: plain.files, configuration: configuration), url)
    }

    @Test func pairsLogsInAndListsGroupsOverTLS() async throws {
        let (rig, url) = try await tlsRig { try WhatsAppTLS.trusting(pemFile: $0) }
        #expect(url.hasPrefix("wss://localhost:"))
        let (client, user, session) = try await rig.pairedClient()
        #expect(await rig.simulator.observed.logins[user] == 1)
        #expect(try await client.groups().count == WhatsAppSimulator.groupFixture.count)
        await client.disconnect()
        #expect(await session.value == .requested)
        await rig.simulator.stop()
    }

    @Test func refusesAServerTheTrustRootsDoNotVouchFor() async throws {
        let (rig, _) = try await tlsRig { _ in WhatsAppTLS.system }
        let outcome = await rig.client().run()
        guard case .networkError(let message) = outcome else {
            Issue.record("expected a network error, got \(outcome)")
            return
        }
        #expect(message.contains("CERTIFICATE_VERIFY_FAILED"), "a TLS verification failure, got: \(message)")
        #expect(await rig.simulator.observed.registrations == 0)
        await rig.simulator.stop()
    }

    @Test func systemTrustIsTheCABundleParsedOnce() throws {
        guard case .certificates(let roots)? = WhatsAppTLS.system.trustRoots else {
            Issue.record("expected the system bundle as parsed certificates, got \(String(describing: WhatsAppTLS.system.trustRoots))")
            return
        }
        #expect(roots.count > 50, "Debian's ca-certificates bundle holds well over a hundred roots")
    }

    @Test func unreadableOrEmptyCAFilesAreClearErrors() throws {
        let directory = try makeTemporaryDirectory()
        let garbage = directory + "/garbage.pem"
        try Data("not a certificate".utf8).write(to: URL(fileURLWithPath: garbage))
        #expect(throws: WhatsAppTLSError.self) { try WhatsAppTLS.trusting(pemFile: garbage) }
        #expect(throws: WhatsAppTLSError.self) { try WhatsAppTLS.trusting(pemFile: directory + "/missing.pem") }
        #expect(throws: SimulatorError.self) { try WhatsAppSimulator.serverTLS(certificateFile: garbage, keyFile: garbage) }
    }
}
