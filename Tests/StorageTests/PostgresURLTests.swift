import Foundation
import Logging
import NIOSSL
import Storage
import Tenancy
import TestSupport
import Testing

@Suite("PostgreSQL URLs: TLS unless written otherwise, credentials decoded once")
struct PostgresURLTests {
    @Test("a remote host without sslmode requires TLS with full verification")
    func remoteHostDefaultsToVerifiedTLS() throws {
        let url = try PostgresURL("postgres://db.example:5432/x")
        #expect(url.tlsMode == .verifyFull)
        let tls = try #require(url.clientTLSConfiguration)
        #expect(tls.certificateVerification == .fullVerification)
    }

    @Test("loopback hosts default to plain TCP, and so does an explicit sslmode=disable elsewhere")
    func plainOnlyForLoopbackOrExplicitDisable() throws {
        for host in ["127.0.0.1", "localhost", "[::1]", "127.1.2.3"] {
            #expect(try PostgresURL("postgres://u@\(host):5432/x").tlsMode == .disable, "\(host)")
        }
        #expect(try PostgresURL("postgres://db.example/x?sslmode=disable").clientTLSConfiguration == nil)
        #expect(try PostgresURL("postgres://127.0.0.2.example/x").tlsMode == .verifyFull)
    }

    @Test("require, verify-ca and verify-full map to the matching certificate checks, with sslrootcert as trust roots")
    func modesAndRootCertificate() throws {
        let require = try #require(try PostgresURL("postgres://db.example/x?sslmode=require").clientTLSConfiguration)
        #expect(require.certificateVerification == .none)
        let pinned = try PostgresURL("postgres://db.example/x?sslmode=verify-ca&sslrootcert=/etc/wahost/pg-ca.pem")
        #expect(pinned.rootCertificatePath == "/etc/wahost/pg-ca.pem")
        let configuration = try #require(pinned.clientTLSConfiguration)
        #expect(configuration.certificateVerification == .noHostnameVerification)
        #expect(configuration.trustRoots == .file("/etc/wahost/pg-ca.pem"))
        let full = try #require(try PostgresURL("postgres://db.example/x?sslmode=verify-full").clientTLSConfiguration)
        #expect(full.certificateVerification == .fullVerification)
    }

    @Test("prefer, allow, typos and unknown parameters are refused with a message naming them", arguments: [
        "sslmode=prefer", "sslmode=allow", "sslmode=requre", "sslmod=require", "sslmode=disable&sslrootcert=/x.pem",
    ])
    func unknownModesAreRefused(query: String) {
        #expect(throws: PostgresURLError.self) { try PostgresURL("postgres://u:secret@db.example/x?\(query)") }
        do {
            _ = try PostgresURL("postgres://u:secret@db.example/x?\(query)")
        } catch {
            #expect(!error.description.contains("secret"))
        }
    }

    @Test("user and password are percent-decoded exactly once")
    func credentialsDecodedOnce() throws {
        let url = try PostgresURL("postgres://us%2541r:p%40ss%2542word@db.example/x?sslmode=require")
        #expect(url.username == "us%41r")
        #expect(url.password == "p@ss%42word")
    }

    @Test("the store factory refuses sslmode=prefer instead of connecting in clear", .enabled(if: ExternalTools.postgresEnabled))
    func factoryRefusesPrefer() async throws {
        let server = try #require(ExternalTools.postgres)
        let url = "postgres://\(server.user)@\(server.host):\(server.port)/\(server.database)?sslmode=prefer"
        await #expect(throws: RepositoryError.self) {
            let store = try await SystemStoreFactory.open(databaseURL: url, dataDirectory: "/nonexistent", logger: Logger(label: "test"))
            try await store.close()
        }
    }
}
