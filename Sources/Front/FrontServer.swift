import KMSCore
import KMSRuntime
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// The entry point `main.swift` calls: sets up logging, runs the front, returns the exit status.
public enum FrontProcess {
    /// The front's version, sent to the broker in HELLO.
    public static let version = "0.1.0"

    /// Runs the front until SIGTERM/SIGINT (exit status 0). In the spawn topology a lost or
    /// misbehaving broker connection ends it with status 1 (the broker restarts the front); in
    /// the split topologies (`--broker-address`) the front reconnects with backoff instead.
    public static func run(_ configuration: FrontConfiguration) -> Int32 {
        // No core file, in any topology: a core of the front holds DEKs in flight.
        CoreDumps.disable()
        LogSetup.bootstrap(process: "front", level: configuration.logLevel, format: configuration.logFormat)
        let logger = Logger(label: "front")
        do {
            let server = try FrontServer(configuration: configuration, logger: logger)
            return server.run()
        } catch {
            logger.critical("startup.failed", metadata: ["reason": "\(error)"])
            return 1
        }
    }
}

/// Wires the pieces: event loop, signals, the listening socket, the broker connection and the
/// gRPC server, and owns the process lifecycle.
final class FrontServer {
    enum Lifecycle: Equatable {
        /// Listening; HELLO sent, calls answered UNAVAILABLE until the broker answers it.
        case awaitingHello
        case running
        /// SIGTERM/SIGINT: GOAWAY sent, open calls finishing (at most `drainMillis`).
        case draining
        case stopped
    }

    /// How long open calls may take to finish after SIGTERM; kube-apiserver's default KMS
    /// timeout is 3 s, so a call in flight at SIGTERM normally ends well within this.
    static let drainMillis: Int64 = 5_000

    var lifecycle: Lifecycle = .awaitingHello
    let loop: EventLoop
    let logger: Logger
    private let configuration: FrontConfiguration
    private let broker: BrokerClient
    let grpc: GRPCServer
    /// Reconnect backoff in the split topologies (FrontServer+Reconnect.swift).
    var reconnectDelayMillis = FrontServer.minReconnectMillis
    var readyNotified = false
    let systemdStatus = SystemdStatus()
    private var watchdog: SystemdWatchdog?
    let observability: FrontObservability
    /// The socket path the front bound itself and removes on exit (nil for an inherited fd).
    private let boundPath: String?
    private var exitStatus: Int32 = 0

    init(configuration: FrontConfiguration, logger: Logger) throws(ConfigurationError) {
        self.configuration = configuration
        self.logger = logger
        // Writes to a closed peer must fail with EPIPE, not kill the process.
        signal(SIGPIPE, SIG_IGN)
        do {
            loop = try EventLoop()
        } catch {
            throw ConfigurationError("event loop: \(error)")
        }

        let (listenFD, boundPath) = try Self.openListener(
            configuration.listen, mode: configuration.socketMode, group: configuration.socketGroup, logger: logger)
        self.boundPath = boundPath
        var brokerFD: Int32 = -1
        if case .inheritedFD = configuration.broker {
            do {
                brokerFD = try Self.openBroker(configuration.broker)
            } catch {
                close(listenFD)
                if let boundPath { unlink(boundPath) }
                throw error
            }
        }
        broker = BrokerClient(fd: brokerFD, loop: loop, logger: logger)
        grpc = GRPCServer(listenFD: listenFD, loop: loop, broker: broker, logger: logger)
        grpc.clientPolicy = configuration.clientPeer
        observability = FrontObservability(loop: loop, broker: broker, grpc: grpc, logger: logger)
    }

    /// Runs the event loop; returns the exit status.
    func run() -> Int32 {
        broker.onReady = { [unowned self] answer in self.brokerReady(answer) }
        broker.onFailure = { [unowned self] reason in self.brokerFailed(reason) }
        grpc.onDrained = { [unowned self] in self.stop() }
        do {
            try loop.handleSignals([SIGTERM, SIGINT]) { [unowned self] signal in self.signalled(signal) }
            try grpc.startAccepting()
            // HELLO only once the KMS socket accepts: in the spawn topology it is the readiness report.
            if case .inheritedFD = configuration.broker { try broker.start(frontVersion: FrontProcess.version) }
            observability.healthAddress = configuration.healthAddress
            observability.healthMode = configuration.healthMode
            observability.runtimeMetrics = configuration.runtimeMetrics
            observability.start(healthPort: configuration.healthPort, metricsPort: configuration.metricsPort)
            // Every socket is open and no client byte has been read: confine the process now.
            observability.sandbox = try FrontSandbox.apply(
                FrontSandbox.needs(configuration, boundPath: boundPath), mode: configuration.sandbox, logger: logger)
        } catch {
            logger.critical("startup.failed", metadata: ["reason": "\(error)"])
            cleanUp()
            return 1
        }
        logger.info("front.start", metadata: ["listen": "\(listenDescription)", "pid": "\(getpid())"])
        watchdog = SystemdWatchdog.start(on: loop)
        if case .address = configuration.broker {
            systemdStatus.report("connecting to the broker")
            connectBroker()
        }
        loop.run()
        watchdog?.stop()
        cleanUp()
        return exitStatus
    }

    private var listenDescription: String {
        switch configuration.listen {
        case .inheritedFD(let fd): "fd:\(fd)"
        case .address(let address): address.description
        case .socketActivated: "socket activation"
        }
    }

    var isSplit: Bool {
        if case .address = configuration.broker { return true }
        return false
    }

    var brokerPeerPolicy: BrokerPeerPolicy { configuration.brokerPeer }

    var brokerAddress: ListenAddress? {
        if case .address(let address) = configuration.broker { return address }
        return nil
    }

    /// The broker connection, for the reconnect logic.
    var brokerClient: BrokerClient { broker }

    private func brokerReady(_ answer: HelloAnswer) {
        // Draining after a broker restart: the calls still open get the new broker.
        if lifecycle == .draining { return grpc.brokerBecameReady() }
        guard lifecycle == .awaitingHello else { return }
        lifecycle = .running
        reconnectDelayMillis = Self.minReconnectMillis
        observability.brokerReady(version: answer.brokerVersion)
        grpc.brokerBecameReady()
        logger.info(
            "broker.ready",
            metadata: ["broker_version": "\(answer.brokerVersion)", "max_in_flight": "\(answer.maxInFlight)"])
        // READY=1 once: the KMS socket listens and the broker answered HELLO.
        if !readyNotified {
            readyNotified = true
            SystemdNotify.send("READY=1")
        }
        systemdStatus.report("serving \(listenDescription)")
    }

    /// The broker connection is unusable: answer every open call UNAVAILABLE and exit 1 (0 when
    /// already draining: the front was asked to stop anyway, and the broker may be stopping too).
    private func brokerFailed(_ reason: String) {
        guard lifecycle != .stopped else { return }
        // Split: reconnect, also while draining when calls are still open (they wait for the
        // next broker within their deadline; the drain timeout bounds it).
        if isSplit && (lifecycle != .draining || grpc.callsInFlight > 0) { return brokerLost(reason) }
        logger.error("broker.connection_failed", metadata: ["reason": "\(reason)"])
        if lifecycle != .draining { exitStatus = 1 }
        grpc.failAll(GRPCStatus(.unavailable, "broker connection lost"))
        stop()
    }

    private func signalled(_ signal: Int32) {
        switch lifecycle {
        case .awaitingHello, .running:
            logger.info("shutdown.begin", metadata: ["signal": "\(signal)"])
            lifecycle = .draining
            SystemdNotify.send("STOPPING=1")
            systemdStatus.report("shutting down")
            loop.schedule(afterMillis: Self.drainMillis) { [weak self] in
                guard let self, self.lifecycle == .draining else { return }
                self.logger.warning("front.drain_timeout", metadata: ["connections": "\(self.grpc.connections.count)"])
                self.grpc.failAll(GRPCStatus(.unavailable, "server shutting down"))
                self.stop()
            }
            grpc.drain()
        case .draining:
            // A second signal: stop now.
            grpc.failAll(GRPCStatus(.unavailable, "server shutting down"))
            stop()
        case .stopped:
            break
        }
    }

    private func stop() {
        lifecycle = .stopped
        loop.stop()
    }

    private func cleanUp() {
        observability.stop()
        grpc.stopAccepting()
        if let boundPath { unlink(boundPath) }
        logger.info("shutdown.done", metadata: ["exit_status": "\(exitStatus)"])
    }

    /// The listening KMS socket: adopted (never bound or unlinked by the front) or bound here.
    private static func openListener(
        _ endpoint: FrontConfiguration.ListenEndpoint, mode: mode_t, group: gid_t?, logger: Logger
    ) throws(ConfigurationError) -> (
        fd: Int32, boundPath: String?
    ) {
        switch endpoint {
        case .inheritedFD(let fd):
            try checkSocket(fd, type: Int32(SOCK_STREAM.rawValue), listening: true, flag: "listen-fd")
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            return (fd, nil)
        case .address(let address):
            let opened = try ListenEndpoint.open(
                type: Int32(SOCK_STREAM.rawValue), activationName: "kms", logger: logger
            ) {
                (address, SocketListener.Options(mode: mode, groupID: group))
            }
            return (opened.fd, opened.boundPath)
        case .socketActivated:
            let opened = try ListenEndpoint.open(
                type: Int32(SOCK_STREAM.rawValue), activationName: "kms", logger: logger
            ) {
                () throws(ConfigurationError) in
                throw ConfigurationError("socket activation: no listening Unix stream socket was passed (LISTEN_FDS)")
            }
            return (opened.fd, opened.boundPath)
        }
    }

    /// The broker connection: adopted (spawn topology) or connected here (split topologies).
    private static func openBroker(_ endpoint: FrontConfiguration.BrokerEndpoint) throws(ConfigurationError) -> Int32 {
        switch endpoint {
        case .inheritedFD(let fd):
            try checkSocket(fd, type: Int32(SOCK_SEQPACKET.rawValue), listening: false, flag: "broker-fd")
            return fd
        case .address(let address):
            do {
                return try UnixSocket.connect(to: address, type: Int32(SOCK_SEQPACKET.rawValue))
            } catch {
                throw ConfigurationError("connect to broker at \(address): \(error)")
            }
        }
    }

    /// Checks that an inherited descriptor is a Unix socket of the expected type and state.
    static func checkSocket(_ fd: Int32, type: Int32, listening: Bool, flag: String) throws(ConfigurationError) {
        switch SocketCheck.problem(fd, type: type, listening: listening) {
        case nil: return
        case .notASocket(let error):
            throw ConfigurationError("--\(flag) \(fd) is not a socket: \(SystemError("getsockopt", errno: error))")
        case .wrongType(let value): throw ConfigurationError("--\(flag) \(fd) has the wrong socket type \(value)")
        case .notUnix: throw ConfigurationError("--\(flag) \(fd) is not a Unix socket")
        case .wrongState:
            throw ConfigurationError("--\(flag) \(fd) is \(listening ? "not listening" : "a listening socket")")
        }
    }
}
