import App
import ArgumentParser
import Foundation
import Hummingbird
import Logging
import Tenancy

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the HTTP server.")

    @OptionGroup var storage: StorageOptions

    @Option(help: "Address to listen on (env WAHOST_HOST, default 127.0.0.1).")
    var host: String?

    @Option(help: "Port to listen on (env WAHOST_PORT, default 8080).")
    var port: Int?

    @Option(name: .customLong("node-id"), help: "Lease owner name (env WAHOST_NODE_ID, default the host name, made unique per live process).")
    var nodeID: String?

    @Option(
        name: .customLong("advertise-url"),
        help: "Internal URL other nodes forward requests for this node's sessions to (env WAHOST_ADVERTISE_URL, default http://HOST:PORT; required with PostgreSQL on 0.0.0.0 or ::).")
    var advertiseURL: String?

    @Option(
        name: .customLong("trusted-proxy"), parsing: .upToNextOption,
        help: "CIDR ranges of reverse proxies whose X-Forwarded-For names the client (env WAHOST_TRUSTED_PROXIES, comma-separated).")
    var trustedProxies: [String] = []

    @Option(
        name: .customLong("init-secrets-file"),
        help: "On the first start, write the new secrets to this file (created 0600, must not exist) instead of stdout (env WAHOST_INIT_SECRETS_FILE).")
    var initSecretsFile: String?

    @Option(
        name: .customLong("otp-sender"),
        help: "Tenant whose connected session sends WhatsApp one-time codes for tenants that cannot send their own (env WAHOST_OTP_SENDER).")
    var otpSender: String?

    @Flag(
        name: .customLong("allow-private-webhooks"),
        help: "Let webhooks reach loopback, private and link-local addresses (env WAHOST_ALLOW_PRIVATE_WEBHOOKS=1).")
    var allowPrivateWebhooks = false

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        var configuration = storage.configuration()
        var tenancy = TenantDirectory.Configuration()
        configuration.host = host ?? environment["WAHOST_HOST"] ?? configuration.host
        if let port = port ?? environment["WAHOST_PORT"].flatMap(Int.init) {
            guard (0...65535).contains(port) else { throw fail("port must be 0-65535", code: 2) }
            configuration.port = port
        }
        do { try configuration.resolveAdvertiseURL(advertiseURL ?? environment["WAHOST_ADVERTISE_URL"]) } catch {
            throw fail("\(error)", code: 2)
        }
        if let url = environment["WAHOST_WA_URL"], !url.isEmpty { configuration.whatsAppURL = url }
        if let key = environment["WAHOST_WA_ROOT_KEY"], !key.isEmpty { configuration.whatsAppRootKeyHex = key }
        if let file = environment["WAHOST_WA_CA_FILE"], !file.isEmpty { configuration.whatsAppCAFile = file }
        if let ttl = environment["WAHOST_LEASE_TTL"] {
            guard let seconds = Int(ttl), (3...3600).contains(seconds) else { throw fail("WAHOST_LEASE_TTL must be 3-3600 seconds", code: 2) }
            configuration.leaseTTL = .seconds(seconds)
        }
        let proxyTexts = trustedProxies.isEmpty
            ? (environment["WAHOST_TRUSTED_PROXIES"] ?? "").split(whereSeparator: { $0 == "," || $0 == " " }).map(String.init) : trustedProxies
        for text in proxyTexts {
            guard let network = IPNetwork(text) else { throw fail("--trusted-proxy: '\(text)' is not an address or CIDR range", code: 2) }
            configuration.trustedProxies.append(network)
        }
        if let text = environment["WAHOST_AUDIT_RETENTION_DAYS"] {
            guard let days = Int(text), (0...36_500).contains(days) else { throw fail("WAHOST_AUDIT_RETENTION_DAYS must be 0-36500 (0 keeps everything)", code: 2) }
            configuration.auditRetention = days == 0 ? nil : .seconds(days * 86_400)
        }
        if let text = environment["WAHOST_EVENT_RETENTION_HOURS"] {
            guard let hours = Int(text), (24...87_600).contains(hours) else { throw fail("WAHOST_EVENT_RETENTION_HOURS must be 24-87600", code: 2) }
            configuration.eventRetention = .seconds(hours * 3600)
        }
        if let text = otpSender ?? environment["WAHOST_OTP_SENDER"], !text.isEmpty {
            guard let name = try? TenantName(text) else { throw fail("--otp-sender: '\(text)' is not a tenant name", code: 2) }
            configuration.otpSender = name
        }
        configuration.allowPrivateWebhooks = allowPrivateWebhooks || environment["WAHOST_ALLOW_PRIVATE_WEBHOOKS"] == "1"
        if let text = environment["WAHOST_WEBHOOK_RETRY_HOURS"] {
            guard let hours = Double(text), hours > 0, hours <= 720 else { throw fail("WAHOST_WEBHOOK_RETRY_HOURS must be 0-720 (fractions allowed)", code: 2) }
            configuration.webhookRetryFor = .milliseconds(Int64(hours * 3_600_000))
        }
        if let text = environment["WAHOST_WEBHOOK_BACKOFF_CAP_SECONDS"] {
            guard let seconds = Int(text), (1...3600).contains(seconds) else { throw fail("WAHOST_WEBHOOK_BACKOFF_CAP_SECONDS must be 1-3600", code: 2) }
            configuration.webhookBackoffCap = .seconds(seconds)
        }
        if let text = environment["WAHOST_BALANCE_MOVES_PER_MINUTE"] {
            guard let moves = Int(text), (0...100_000).contains(moves) else { throw fail("WAHOST_BALANCE_MOVES_PER_MINUTE must be 0-100000", code: 2) }
            configuration.balanceMovesPerMinute = moves
        }
        if let text = environment["WAHOST_TIME_SCALE"] {
            do { configuration.timeScale = try WahostConfiguration.timeScale(parsing: text) } catch { throw fail("\(error)", code: 2) }
        }
        if let text = environment["WAHOST_ARGON2_CONCURRENCY"] {
            guard let count = Int(text), (1...64).contains(count) else { throw fail("WAHOST_ARGON2_CONCURRENCY must be 1-64", code: 2) }
            tenancy.argon2Concurrency = count
        }
        if let text = environment["WAHOST_ARGON2_QUEUE"] {
            guard let count = Int(text), (0...10_000).contains(count) else { throw fail("WAHOST_ARGON2_QUEUE must be 0-10000", code: 2) }
            tenancy.argon2QueueLimit = count
        }
        let identity: NodeIdentity
        do {
            try FileManager.default.createDirectory(atPath: configuration.dataDirectory, withIntermediateDirectories: true)
            identity = try NodeIdentity.claim(
                dataDirectory: configuration.dataDirectory, requested: nodeID ?? environment["WAHOST_NODE_ID"],
                base: WahostConfiguration.defaultNodeID())
        } catch {
            throw fail("\(error)", code: 1)
        }
        configuration.nodeID = identity.nodeID

        var logger = Logger(label: "wahost")
        logger.logLevel = environment["WAHOST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
        if let text = environment["WAHOST_LOCKOUT_MAX_FAILURES"] {
            guard let failures = Int(text), failures >= 1 else { throw fail("WAHOST_LOCKOUT_MAX_FAILURES must be a positive number", code: 2) }
            tenancy.lockoutPolicy.maximumFailures = failures
        }
        if configuration.timeScale != 1 {
            logger.warning("WhatsApp keepalive and reconnect backoff timings accelerated", metadata: ["time_scale": "\(configuration.timeScale)"])
        }
        let services: WahostServices
        do {
            services = try await WahostServices.open(configuration, tenancyConfiguration: tenancy, logger: logger)
        } catch {
            throw fail("\(error)", code: 1)
        }
        do {
            try await NodeIDCheck.ensureFree(services)
            let (refusal, warning) = try await CredentialMigration.startupCheck(services)
            if let refusal {
                await services.close()
                throw fail(refusal, code: 1)
            }
            if let warning { logger.warning("\(warning)") }
        } catch let error as ExitCode {
            throw error
        } catch {
            await services.close()
            throw fail("\(error)", code: 1)
        }
        // Opened before the first-start check, so a path that cannot be created fails before any secret exists.
        let secretsPath = initSecretsFile ?? environment["WAHOST_INIT_SECRETS_FILE"].flatMap { $0.isEmpty ? nil : $0 }
        let secretsFile: FirstStartSecretsFile?
        do { secretsFile = try secretsPath.map(FirstStartSecretsFile.create(path:)) } catch {
            await services.close()
            throw fail("--init-secrets-file: \(error)", code: 1)
        }
        if let first = try await services.bootstrapIfEmpty() {
            if let secretsFile {
                do { try secretsFile.write(first, dashboardURL: "http://\(configuration.host):\(configuration.port)/dashboard/") } catch {
                    await services.close()
                    throw fail("--init-secrets-file: \(error); rotate the tokens with `wahost tenant rotate-token default` and `wahost operator rotate-token`", code: 1)
                }
                print("wahost first start: created tenant 'default'; its secrets are in \(secretsFile.path) (mode 0600).")
                fflush(nil)
            } else {
                printFirstStart(first, configuration: configuration)
            }
        } else {
            secretsFile?.discard()
        }
        logger.info(
            "starting",
            metadata: [
                "node": "\(configuration.nodeID)", "storage": "\(services.backendName)",
                "data_dir": "\(configuration.dataDirectory)",
            ])
        do {
            try await runServer(services: services, logger: logger)
        } catch {
            await services.close(logger: logger)
            throw fail("\(error)", code: 1)
        }
        await services.close(logger: logger)
        logger.info("database closed; stopped")
        withExtendedLifetime(identity) {}
    }

    private func printFirstStart(_ first: FirstStart, configuration: WahostConfiguration) {
        var lines = [
            "",
            "wahost first start: created tenant 'default'. These secrets are shown once; store them now.",
            "  admin token (x-admin-token): \(first.tenant.adminToken.text)",
        ]
        if let otp = first.tenant.otp {
            lines.append("  OTP secret (base32):         \(otp.secretBase32)")
            lines.append("  otpauth URI:                 \(otp.provisioningURI)")
        }
        if let operatorToken = first.operatorToken {
            lines.append("  operator token:              \(operatorToken.text)")
        }
        lines.append("  dashboard:                   http://\(configuration.host):\(configuration.port)/dashboard/")
        lines.append("")
        print(lines.joined(separator: "\n"))
        if isatty(STDOUT_FILENO) == 1, let uri = first.tenant.otp?.provisioningURI, let qr = TerminalQR.render(uri) {
            print(qr)
        }
        fflush(nil)
    }
}
