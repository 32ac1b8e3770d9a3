import KMSRuntime
import Logging
import VaultClient

#if canImport(Glibc)
    import Glibc
#endif

extension BrokerProcess {
    /// The spawn topology as `serve` parsed it.
    public struct SpawnOptions {
        public var configuration: BrokerConfiguration
        /// The KMS socket kube-apiserver connects to, created here and handed to the front.
        public var address: ListenAddress
        public var socket: SocketListener.Options
        public var frontExecutable: String
        public var plan: FrontPrivilegePlan
        /// The front's flags after `--broker-fd 3 --listen-fd 4`.
        public var frontArguments: [String]

        public init(
            configuration: BrokerConfiguration, address: ListenAddress, socket: SocketListener.Options,
            frontExecutable: String, plan: FrontPrivilegePlan, frontArguments: [String]
        ) {
            self.configuration = configuration
            self.address = address
            self.socket = socket
            self.frontExecutable = frontExecutable
            self.plan = plan
            self.frontArguments = frontArguments
        }
    }

    /// Creates the KMS socket, starts the service and the front (unprivileged, with the socket
    /// and one end of a socketpair), and notifies READY=1 at the front's first HELLO. `run()` serves.
    public static func spawn(_ options: SpawnOptions, logger: Logger) throws(ConfigurationError) -> BrokerProcess {
        try spawn(options, logger: logger, makeTransport: nil, processWide: true)
    }

    static func spawn(
        _ options: SpawnOptions, logger: Logger, makeTransport: ((EventLoop) -> any VaultTransport)?,
        processWide: Bool
    ) throws(ConfigurationError) -> BrokerProcess {
        let process = try BrokerProcess(
            configuration: options.configuration, logger: logger, makeTransport: makeTransport, processWide: processWide
        )
        let address = options.address
        if case .path(let path) = address { try SocketDirectory.check(socketPath: path, logger: logger) }
        let listenFD = try SocketListener.listen(at: address, options: options.socket)
        let arguments = ["--broker-fd", "3", "--listen-fd", "4"] + options.frontArguments
        var readyNotified = false
        let service = process.service
        let supervisor = FrontSupervisor(
            options: .init(
                executable: options.frontExecutable, plan: options.plan, listenFD: listenFD, arguments: arguments),
            loop: process.loop, logger: logger
        ) { fd in
            service.attachFront(
                fd: fd,
                onHello: {
                    logger.info("front.ready", metadata: ["socket": "\(address)"])
                    if !readyNotified {
                        readyNotified = true
                        SystemdNotify.send("READY=1\nSTATUS=serving \(address)")
                    }
                },
                onClose: {})
        }
        process.onShutdown(
            stopIntake: { done in supervisor.stop(completion: done) },
            cleanup: {
                if case .path(let path) = address { unlink(path) }
                close(listenFD)
            })
        if processWide { try process.handleSignals() }
        service.start()
        process.reportHealth(serving: "\(address)") { readyNotified }
        do {
            try supervisor.start()
        } catch {
            if case .path(let path) = address { unlink(path) }
            throw error
        }
        process.logStarted("socket", "\(address)")
        return process
    }
}
