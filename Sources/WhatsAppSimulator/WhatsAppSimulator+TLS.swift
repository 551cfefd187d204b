import NIOSSL

extension WhatsAppSimulator {
    /// Server TLS from a PEM certificate chain file and its PEM key file, for `startTLS`.
    public static func serverTLS(certificateFile: String, keyFile: String) throws -> TLSConfiguration {
        let chain: [NIOSSLCertificate]
        let key: NIOSSLPrivateKey
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certificateFile)
            key = try NIOSSLPrivateKey(file: keyFile, format: .pem)
        } catch {
            throw SimulatorError("cannot load the TLS certificate \(certificateFile) or key \(keyFile): \(error)")
        }
        guard !chain.isEmpty else { throw SimulatorError("no PEM certificate in \(certificateFile)") }
        return TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
    }
}
