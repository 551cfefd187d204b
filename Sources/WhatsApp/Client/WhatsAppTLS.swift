import Foundation
import NIOSSL

/// TLS settings for the WhatsApp socket, with trust roots parsed once per process and shared by every connection.
///
/// The WebSocket client builds a new TLS context for every connection. Left at NIOSSL's default trust, each context
/// re-reads and parses the system CA bundle (about 150 certificates); handing it certificates parsed once makes a
/// context share them by reference instead, which is what lets thousands of sessions hold a TLS connection each.
public enum WhatsAppTLS {
    /// Where Debian/Ubuntu/Alpine and Fedora keep the system CA bundle.
    static let systemBundlePaths = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"]

    /// Client TLS trusting the system CA bundle, parsed on first use; NIOSSL's default trust when there is no bundle.
    public static let system: TLSConfiguration = {
        var configuration = TLSConfiguration.makeClientConfiguration()
        for path in systemBundlePaths where FileManager.default.isReadableFile(atPath: path) {
            if let certificates = try? NIOSSLCertificate.fromPEMFile(path), !certificates.isEmpty {
                configuration.trustRoots = .certificates(certificates)
                break
            }
        }
        return configuration
    }()

    /// Client TLS trusting only the PEM certificates in `path` (`WAHOST_WA_CA_FILE`; the simulator's own certificate).
    public static func trusting(pemFile path: String) throws -> TLSConfiguration {
        let certificates: [NIOSSLCertificate]
        do {
            certificates = try NIOSSLCertificate.fromPEMFile(path)
        } catch {
            throw WhatsAppTLSError("cannot read CA certificates from \(path): \(error)")
        }
        guard !certificates.isEmpty else { throw WhatsAppTLSError("no PEM certificate in \(path)") }
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .certificates(certificates)
        return configuration
    }
}

/// A TLS trust setting cannot be used.
public struct WhatsAppTLSError: Error, Sendable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
