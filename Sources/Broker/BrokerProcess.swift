import KMSRuntime
import Logging
import VaultClient

#if canImport(Glibc)
    import Glibc
#endif

/// The broker process once its command line is parsed, in either topology: the spawn topology
/// (`serve`: the broker starts the front on a socketpair, `spawn(_:logger:)`) and the split one
/// (`broker`: fronts connect to a SOCK_SEQPACKET socket, `split(_:logger:)`). It owns the wiring
/// the commands share: the environment scrub, the event loop, the `BrokerService`, the systemd
/// watchdog and status, and the shutdown sequence (stop intake, drain, clean up, stop the loop).
public final class BrokerProcess {
    public let loop: EventLoop
    public let service: BrokerService
    /// As the command line gave it (the log names the addresses as configured).
    let configuration: BrokerConfiguration
    let logger: Logger
    private let watchdog: SystemdWatchdog?
    private var stopIntake: (_ done: @escaping () -> Void) -> Void = { $0() }
    private var cleanup: () -> Void = {}
    private(set) var shuttingDown = false
    /// Set when the shutdown sequence has run to its end (the loop is stopped).
    private(set) var shutDown = false

    /// Interval of the systemd STATUS= health report.
    static let statusIntervalMillis: Int64 = 1_000

    /// `makeTransport` replaces the libcurl transport to Vault (tests use a scripted one);
    /// `processWide` false leaves the environment and the signal handlers alone (tests share the process).
    init(
        configuration: BrokerConfiguration, logger: Logger, makeTransport: ((EventLoop) -> any VaultTransport)?,
        processWide: Bool
    ) throws(ConfigurationError) {
        if processWide { Self.scrubEnvironment(logger: logger) }
        loop = try wrap { () throws(SystemError) in try EventLoop() }
        if let makeTransport {
            service = try BrokerService(
                configuration: configuration, loop: loop, logger: logger, transport: makeTransport(loop))
        } else {
            service = try BrokerService(configuration: configuration, loop: loop, logger: logger)
        }
        self.configuration = configuration
        self.logger = logger
        // WATCHDOG=1 and STATUS= (a spawned front has an empty environment: only the broker notifies).
        watchdog = SystemdWatchdog.start(on: loop)
    }

    /// Makes the process non-dumpable and ignores SIGPIPE. Call first thing, before the secret ID
    /// is read, in every command that reads it: other processes of the broker's uid must not
    /// read the token from its memory or core dumps.
    public static func protect() throws(ConfigurationError) {
        try CoreDumps.disableDumping()
        signal(SIGPIPE, SIG_IGN)
    }

    /// Drops the environment variables the broker does not use (logged by name, never by value).
    public static func scrubEnvironment(logger: Logger?) {
        let removed = EnvironmentScrub.apply()
        guard !removed.isEmpty else { return }
        logger?.info(
            "broker.environment.scrubbed",
            metadata: [
                "removed": "\(removed.joined(separator: ","))",
                "reason": "only VAULT_KUBE_KMS_*, Vault, systemd, locale and OpenSSL variables are kept",
            ])
    }

    /// Serves until the shutdown sequence ends (SIGTERM or SIGINT).
    public func run() { loop.run() }

    /// SIGTERM and SIGINT start the shutdown sequence (installed before the service starts, so
    /// that a signal during startup still cleans up).
    func handleSignals() throws(ConfigurationError) {
        try wrap { () throws(SystemError) in
            try loop.handleSignals([SIGTERM, SIGINT]) { [weak self] signal in self?.shutdown(signal: signal) }
        }
    }

    /// The shutdown sequence, once: STOPPING=1, stop taking fronts, let the service drain, clean
    /// up the sockets, stop the watchdog and the loop.
    func shutdown(signal: Int32) {
        guard !shuttingDown else { return }
        shuttingDown = true
        logger.info("shutdown.begin", metadata: ["signal": "\(signal)"])
        SystemdNotify.send("STOPPING=1")
        stopIntake { [self] in
            service.shutdown { [self] in
                cleanup()
                watchdog?.stop()
                logger.info("shutdown.done")
                shutDown = true
                loop.stop()
            }
        }
    }

    func onShutdown(
        stopIntake: @escaping (_ done: @escaping () -> Void) -> Void, cleanup: @escaping () -> Void
    ) {
        self.stopIntake = stopIntake
        self.cleanup = cleanup
    }

    /// STATUS= every second: the service's health reason, else serving (or waiting for the front).
    func reportHealth(serving: String, status: SystemdStatus = SystemdStatus(), frontReady: @escaping () -> Bool) {
        let reason = service.healthReason
        if reason != "ok" {
            status.report(reason)
        } else if frontReady() {
            status.report("serving \(serving)")
        } else {
            status.report("waiting for the front")
        }
        loop.schedule(afterMillis: Self.statusIntervalMillis) { [weak self] in
            self?.reportHealth(serving: serving, status: status, frontReady: frontReady)
        }
    }

    func logStarted(_ socketKey: String, _ socket: String) {
        logger.info(
            "broker.started",
            metadata: [
                socketKey: "\(socket)", "vault": "\(configuration.vaultAddress)",
                "key_path": "\(configuration.vaultKeyPath)",
            ])
    }
}

/// Turns a system-call failure during setup into a configuration error for the operator.
func wrap<T>(_ body: () throws(SystemError) -> T) throws(ConfigurationError) -> T {
    do { return try body() } catch { throw ConfigurationError("\(error)") }
}
