import KMSRuntime
import Logging
import VaultClient

#if canImport(Glibc)
    import Glibc
#endif

extension BrokerProcess {
    /// The split topology as `broker` parsed it.
    public struct SplitOptions {
        public var configuration: BrokerConfiguration
        /// Who may connect (SO_PEERCRED); at least one of uid and gid is set.
        public var policy: SplitListener.PeerPolicy
        /// Opens the listening SOCK_SEQPACKET socket (socket-activated or bound), called once the
        /// service exists (the secret-ID file was read), so that a bad start leaves no socket.
        public var listen: () throws(ConfigurationError) -> ListeningSocket

        public init(
            configuration: BrokerConfiguration, policy: SplitListener.PeerPolicy,
            listen: @escaping () throws(ConfigurationError) -> ListeningSocket
        ) {
            self.configuration = configuration
            self.policy = policy
            self.listen = listen
        }
    }

    /// A listening socket of the split broker.
    public struct ListeningSocket {
        public var fd: Int32
        /// The path bound for it, removed at shutdown (nil when socket-activated or abstract).
        public var boundPath: String?
        /// How the log and systemd STATUS= name the socket.
        public var name: String

        public init(fd: Int32, boundPath: String?, name: String) {
            self.fd = fd
            self.boundPath = boundPath
            self.name = name
        }
    }

    /// Starts the service and accepts fronts on the socket; READY=1 once the socket accepts
    /// (the secret-ID file was read and checked by then). `run()` serves.
    public static func split(_ options: SplitOptions, logger: Logger) throws(ConfigurationError) -> BrokerProcess {
        try split(options, logger: logger, makeTransport: nil, processWide: true)
    }

    static func split(
        _ options: SplitOptions, logger: Logger, makeTransport: ((EventLoop) -> any VaultTransport)?,
        processWide: Bool
    ) throws(ConfigurationError) -> BrokerProcess {
        let process = try BrokerProcess(
            configuration: options.configuration, logger: logger, makeTransport: makeTransport, processWide: processWide
        )
        let service = process.service
        let socket = try options.listen()
        let listener = SplitListener(fd: socket.fd, loop: process.loop, logger: logger, policy: options.policy) {
            fd, closed in
            service.attachFront(
                fd: fd, helloTimeoutMillis: BrokerService.splitHelloTimeoutMillis,
                onHello: { logger.info("front.ready") },
                onClose: closed)
        }
        let boundPath = socket.boundPath
        let listenFD = socket.fd
        process.onShutdown(
            stopIntake: { done in
                listener.stop()
                done()
            },
            cleanup: {
                if let boundPath { unlink(boundPath) }
                close(listenFD)
            })
        if processWide { try process.handleSignals() }
        service.start()
        do {
            try wrap { () throws(SystemError) in try listener.start() }
        } catch {
            if let boundPath { unlink(boundPath) }
            throw error
        }
        SystemdNotify.send("READY=1")
        process.reportHealth(serving: socket.name) { true }
        process.logStarted("broker_socket", socket.name)
        return process
    }
}
