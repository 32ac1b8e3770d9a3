import KMSCore
import KMSRuntime
import Logging
import VaultClient

#if canImport(Glibc)
    import Glibc
#endif

/// The credential broker: logs in to Vault, holds the token, keeps the key metadata, and serves
/// the broker protocol to front connections. Runs entirely on one `EventLoop` (single thread).
///
/// The front is untrusted: every packet goes through `DispatchTable` (deny by default), every
/// request's meaning is checked before Vault is called, and answers carry only error codes.
public final class BrokerService {
    /// Reported to the front in the HELLO answer.
    public static let softwareVersion = "0.1.0"
    /// Upper bound on how long `shutdown` waits for Vault calls in flight.
    static let maxShutdownDrainMillis: Int64 = 5000

    enum Lifecycle: Equatable {
        case initial
        case running
        case draining
        case stopped
    }

    let configuration: BrokerConfiguration
    let loop: EventLoop
    let logger: Logger
    let transport: any VaultTransport
    let instruments: InstrumentedTransport
    /// The configured Vault addresses and which one serves (`--vault-address a,b,c`).
    let addresses: FailoverTransport
    let tokens: TokenLifecycle
    let transit: TransitClient
    let keyProbe: KeyProbe
    let deepProbe: DeepProbe
    let editionProbe: EditionProbe
    /// The last health reason logged (health changes are logged, with the skip-verify warning).
    private var loggedHealth: String?
    private var healthTimer: EventLoop.TimerID?
    private(set) var lifecycle: Lifecycle = .initial
    /// Lines a front (or whoever reaches the KMS socket) can repeat at will: rate-limited.
    let repetitiveLog = LogRateLimiter()
    private var connections: [UInt64: FrontConnection] = [:]
    private var nextConnectionSerial: UInt64 = 1
    /// Decrypts answered under a foreign key_id (`--accept-foreign-key-ids`), and those refused
    /// because their key_id was foreign; versions already logged as read under a foreign key_id.
    var foreignKeyIDDecrypts: UInt64 = 0
    var foreignKeyIDRefused: UInt64 = 0
    var foreignVersionsLogged: Set<UInt32> = []

    /// Validates the configuration and reads and checks the secret-ID file once, so that a bad
    /// file stops startup with a clear error. Nothing is sent to Vault before `start()`.
    public convenience init(configuration: BrokerConfiguration, loop: EventLoop, logger: Logger)
        throws(ConfigurationError)
    {
        let checked = try configuration.validated()
        try Self.checkSecretIDFile(checked.secretIDPath)
        var transports: [any VaultTransport] = []
        for address in checked.vaultAddresses {
            transports.append(try CurlMultiTransport(loop: loop, options: .init(checked, baseURL: address)))
        }
        let transport = FailoverTransport(
            loop: loop, addresses: checked.vaultAddresses, transports: transports, logger: logger)
        try self.init(configuration: checked, loop: loop, logger: logger, transport: transport)
    }

    /// The same with any transport (tests use a scripted one).
    init(configuration: BrokerConfiguration, loop: EventLoop, logger: Logger, transport: any VaultTransport)
        throws(ConfigurationError)
    {
        let checked = try configuration.validated()
        try Self.checkSecretIDFile(checked.secretIDPath)
        if let key = checked.tlsClientKeyFile { try PrivateKeyFile.check(path: key) }
        let keyPath = try TransitKeyPath(parsing: checked.vaultKeyPath)
        self.configuration = checked
        self.loop = loop
        self.logger = logger
        // One address (tests with a scripted transport): the same failover layer, with one entry.
        let failover =
            transport as? FailoverTransport
            ?? FailoverTransport(loop: loop, addresses: [checked.vaultAddress], transports: [transport], logger: logger)
        addresses = failover
        instruments = InstrumentedTransport(failover)
        let transport: any VaultTransport = instruments
        self.transport = transport
        tokens = TokenLifecycle(
            loop: loop, transport: transport,
            login: AppRoleLogin(
                authMount: checked.authMount, roleID: checked.roleID, namespace: checked.effectiveAuthNamespace),
            secretIDPath: checked.secretIDPath, requestTimeoutMillis: checked.requestTimeoutMillis, logger: logger)
        transit = TransitClient(
            keyPath: keyPath, namespace: checked.vaultNamespace, loop: loop, transport: transport, tokens: tokens)
        keyProbe = KeyProbe(
            loop: loop, transit: transit, namespace: checked.vaultNamespace ?? "",
            intervalMillis: checked.keyCheckIntervalMillis,
            requestTimeoutMillis: checked.requestTimeoutMillis, logger: logger)
        deepProbe = DeepProbe(
            loop: loop, transit: transit, keyProbe: keyProbe, intervalMillis: checked.deepCheckIntervalMillis,
            requestTimeoutMillis: checked.requestTimeoutMillis, logger: logger)
        editionProbe = EditionProbe(
            // sys/license/status exists only in the root namespace; a namespaced token reads 403
            // there, which is logged as edition "unknown" and never refused by default.
            transport: transport, tokens: tokens, namespace: nil,
            requireEnterprise: checked.requireEnterprise, requestTimeoutMillis: checked.requestTimeoutMillis,
            logger: logger)
        tokens.onLogin = { [weak self] in
            self?.keyProbe.probe()
            self?.editionProbe.detect()
        }
    }

    private static func checkSecretIDFile(_ path: String) throws(ConfigurationError) {
        do {
            _ = try SecretIDFile.load(path: path)
        } catch {
            throw ConfigurationError(error.description)
        }
    }

    /// Begins login and the key metadata probe on the loop.
    public func start() {
        guard lifecycle == .initial else { return }
        lifecycle = .running
        let tls = TLSLibraryInfo.current()
        logger.info(
            "broker.start",
            metadata: [
                "vault": "\(configuration.vaultAddresses.joined(separator: ","))", "key": "\(transit.keyMetadataPath)",
                "namespace": "\(configuration.vaultNamespace ?? "")",
                "auth_namespace": "\(configuration.effectiveAuthNamespace ?? "")",
                "tls_sni": "\(configuration.tlsServerName ?? "")",
                "tls_client_cert": "\(configuration.tlsClientCertFile != nil)",
                "proxy": "\(configuration.vaultProxy ?? "none")",
                "openssl": "\(tls.openSSLVersion)", "fips_provider": "\(tls.fipsProviderAvailable)",
                "fips_default": "\(tls.fipsEnabledByDefault)",
            ])
        for warning in configuration.warnings {
            logger.warning("broker.config.warning", metadata: ["reason": "\(warning)"])
        }
        warnIfSkippingVerification()
        warnIfPlainHTTP()
        if let proxy = configuration.vaultProxy {
            logger.warning(
                "broker.vault.proxy",
                metadata: ["proxy": "\(proxy)", "reason": "--vault-proxy: every Vault call goes through this proxy"])
        }
        if configuration.acceptForeignKeyIDs {
            logger.warning(
                "broker.compat.foreign_key_ids",
                metadata: [
                    "reason":
                        "--accept-foreign-key-ids: Decrypt accepts key_ids of another plugin for vault:vN: ciphertexts of this key; switch off once vault_kube_kms_foreign_key_id_decrypts_total stops rising"
                ])
        }
        tokens.start()
        keyProbe.startPeriodic()
        deepProbe.startPeriodic()
        watchHealth()
    }

    /// `--tls-skip-verify` is logged at start and at every health change.
    /// A plain http:// Vault address is logged at start and at every health change, like
    /// `--tls-skip-verify`: the secret ID and the token would cross the network in clear text.
    private func warnIfPlainHTTP() {
        let plain = configuration.vaultAddresses.filter { $0.hasPrefix("http://") }
        guard !plain.isEmpty else { return }
        logger.warning(
            "broker.vault.plaintext",
            metadata: [
                "vault": "\(plain.joined(separator: ","))",
                "reason": .string(
                    "Vault address is http://: the secret ID, the token and the DEK seeds cross the network "
                        + "unencrypted; use https:// outside development"),
            ])
    }

    private func warnIfSkippingVerification() {
        guard configuration.tlsSkipVerify else { return }
        logger.warning(
            "broker.tls.skip_verify",
            metadata: ["reason": "--tls-skip-verify: Vault's certificate is NOT verified; development only"])
    }

    /// Logs every change of the health reason (once a second at most).
    private func watchHealth() {
        guard lifecycle == .running else { return }
        let reason = healthReason
        if reason != loggedHealth {
            loggedHealth = reason
            let index = "\(addresses.currentIndex)"
            if reason == "ok" {
                logger.info("broker.health", metadata: ["healthz": "ok", "vault_address_index": "\(index)"])
            } else {
                logger.warning("broker.health", metadata: ["healthz": "\(reason)", "vault_address_index": "\(index)"])
            }
            warnIfSkippingVerification()
            warnIfPlainHTTP()
        }
        healthTimer = loop.schedule(afterMillis: 1000) { [weak self] in self?.watchHealth() }
    }

    /// `--tls-skip-verify` is on: exported as a metric that stays 1.
    public var tlsSkipVerify: Bool { configuration.tlsSkipVerify }

    /// Counters and state for the metrics endpoint; computed now, no Vault call.
    public var statistics: BrokerStatistics {
        let rolledBack = keyProbe.cache.rolledBack
        return BrokerStatistics(
            healthReason: healthReason, tokens: tokens.counters, tokenSecondsToExpiry: tokens.secondsToExpiry,
            activeKeyVersion: keyProbe.cache.activeVersion, pendingKeyVersion: keyProbe.cache.pendingVersion,
            keyRolledBack: rolledBack, deepProbeSuccesses: deepProbe.successes, deepProbeFailures: deepProbe.failures,
            tlsSkipVerify: configuration.tlsSkipVerify, vaultEdition: editionProbe.edition.rawValue,
            vaultOperations: instruments.operations, frontRequestsInFlight: frontRequestsInFlight,
            frontConnections: openConnectionCount)
    }

    /// The split topology's limit for a connected peer to send HELLO (`attachFront`).
    public static let splitHelloTimeoutMillis: Int64 = 5_000

    /// Serves the broker protocol on a connected SOCK_SEQPACKET `fd` (the service owns and closes
    /// it). `onHello` runs after the front's valid HELLO; `onClose` when the connection ends. With
    /// `helloTimeoutMillis`, a connection that has not sent HELLO by then is closed.

    public func attachFront(
        fd: Int32, helloTimeoutMillis: Int64? = nil, onHello: @escaping () -> Void, onClose: @escaping () -> Void
    ) {
        let serial = nextConnectionSerial
        nextConnectionSerial += 1
        let connection = FrontConnection(
            fd: fd, serial: serial, loop: loop, logger: logger, service: self, onHello: onHello, onClose: onClose)
        var metadata: Logger.Metadata = ["connection": "\(serial)"]
        if let peer = UnixSocket.peerCredentials(fd) {
            metadata["peer_uid"] = "\(peer.uid)"
            metadata["peer_pid"] = "\(peer.pid)"
        }
        do {
            try connection.start(helloTimeoutMillis: helloTimeoutMillis)
        } catch {
            logger.error("broker.front.attach_failed", metadata: ["reason": "\(error)", "connection": "\(serial)"])
            close(fd)
            loop.schedule(afterMillis: 0) { onClose() }
            return
        }
        connections[serial] = connection
        logger.info("broker.front.attached", metadata: metadata)
    }

    /// `ok` when logged in, the key metadata was read and the key is usable; else a short reason.
    public var healthReason: String {
        switch lifecycle {
        case .draining, .stopped: return "shutting down"
        case .initial, .running: break
        }
        if let reason = tokens.healthReason { return reason }
        switch keyProbe.health {
        case .unknown: return StartingHealth.keyMetadataNotReadYet
        case .unhealthy(let reason): return reason
        case .healthy: break
        }
        if case .unhealthy(let reason) = deepProbe.health { return reason }
        if let reason = editionProbe.healthReason { return reason }
        return "ok"
    }

    /// Stops renewing and probing, waits (at most `min(requestTimeout, 5 s)`) for the Vault calls
    /// in flight to finish and be answered, cancels whatever is left, revokes the token, then
    /// calls `completion`.
    public func shutdown(completion: @escaping () -> Void) {
        guard lifecycle == .initial || lifecycle == .running else {
            loop.schedule(afterMillis: 0) { completion() }
            return
        }
        lifecycle = .draining
        logger.info("broker.shutdown", metadata: ["vault_in_flight": "\(transport.inFlightCount)"])
        for connection in connections.values { connection.stopReading() }
        keyProbe.stop()
        deepProbe.stop()
        if let healthTimer { loop.cancel(healthTimer) }
        healthTimer = nil
        tokens.stop()
        let giveUpAt =
            EventLoop.nowMillis() + min(Int64(configuration.requestTimeoutMillis), Self.maxShutdownDrainMillis)
        drain(until: giveUpAt, completion: completion)
    }

    private func drain(until giveUpAt: Int64, completion: @escaping () -> Void) {
        guard transport.inFlightCount > 0, EventLoop.nowMillis() < giveUpAt else {
            transport.cancelAll()
            lifecycle = .stopped
            revokeToken(completion: completion)  // BrokerService+Revoke.swift
            return
        }
        loop.schedule(afterMillis: 10) { [weak self] in self?.drain(until: giveUpAt, completion: completion) }
    }

    func connectionClosed(_ connection: FrontConnection) {
        connections[connection.serial] = nil
    }

    /// Front connections currently open (for tests and metrics).
    var openConnectionCount: Int { connections.count }

    /// Requests waiting for Vault over all front connections.
    var frontRequestsInFlight: Int { connections.values.reduce(0) { $0 + $1.inFlight } }
}
