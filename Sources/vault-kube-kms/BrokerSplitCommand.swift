import ArgumentParser
import Broker
import KMSRuntime
import Logging
import VaultClient

#if canImport(Glibc)
    import Glibc
#endif

/// `vault-kube-kms broker`: the broker alone, for the split topologies (two systemd units, two
/// containers of a static Pod). It serves broker protocol v1 on a SOCK_SEQPACKET socket, its own
/// (`--broker-listen-address`) or a socket-activated one, to peers whose `SO_PEERCRED` uid/gid
/// match `--allowed-front-uid`/`--allowed-front-gid`. The front is started separately.
struct BrokerSplitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "broker",
        abstract: "Run only the broker, serving a separately started front over a Unix socket.")

    @Option(help: "Broker socket to create, unix:///path or unix:///@abstract (omit under socket activation).")
    var brokerListenAddress: String?
    @Option(help: "Uid the front runs as; other peers are refused.")
    var allowedFrontUid: UInt32?
    @Option(help: "Gid the front runs as; other peers are refused.")
    var allowedFrontGid: UInt32?
    @Option(help: "Group owning the broker socket (name or gid), so the front's group can connect.")
    var brokerSocketGroup: String?
    @Option(help: "Mode of the broker socket, octal (default 0660; no access for others is allowed).")
    var brokerSocketMode: String?
    @Flag(help: "Development only: allow an abstract --broker-listen-address (unix:///@name).")
    var insecureAbstractBrokerAddress = false
    @OptionGroup var vault: VaultOptions
    @OptionGroup var log: LogOptions

    func run() throws {
        let logging = try log.resolved()
        LogSetup.bootstrap(process: "broker", level: logging.level, format: logging.format)
        let logger = Logger(label: "broker")
        do {
            try serve(logger: logger)
        } catch {
            logger.critical("startup.failed", metadata: ["reason": "\(error.description)"])
            throw ExitCode(1)
        }
    }

    private func serve(logger: Logger) throws(ConfigurationError) {
        try BrokerProcess.protect()
        try refuseAbstractAddress()
        let policy = SplitListener.PeerPolicy(
            uid: try numeric(allowedFrontUid, "allowed-front-uid"),
            gid: try numeric(allowedFrontGid, "allowed-front-gid"))
        guard policy.uid != nil || policy.gid != nil else {
            throw ConfigurationError("--allowed-front-uid or --allowed-front-gid is required")
        }
        let configuration = try vault.configuration()
        let options = BrokerProcess.SplitOptions(configuration: configuration, policy: policy) {
            () throws(ConfigurationError) in try openListener(logger: logger)
        }
        try BrokerProcess.split(options, logger: logger).run()
    }

    private func numeric(_ value: UInt32?, _ flag: String) throws(ConfigurationError) -> UInt32? {
        if let value { return value }
        guard let text = Flags.resolve(nil, flag) else { return nil }
        guard let parsed = UInt32(text) else { throw ConfigurationError("--\(flag) must be a number") }
        return parsed
    }

    /// Anyone can bind a free abstract name (while the broker restarts, say), and a front would
    /// send its DEK seeds there: refused without the development flag, before anything else.
    private func refuseAbstractAddress() throws(ConfigurationError) {
        guard let text = Flags.resolve(brokerListenAddress, "broker-listen-address"),
            case .abstract(let name) = try ListenAddress(parsing: text),
            !(insecureAbstractBrokerAddress || Flags.bool("insecure-abstract-broker-address"))
        else { return }
        throw ConfigurationError(
            "abstract broker address unix:///@\(name) is refused: any local user can bind an abstract name; "
                + "use a socket path (--insecure-abstract-broker-address allows it for development)")
    }

    /// The socket-activated SOCK_SEQPACKET socket if there is one, else the socket bound here.
    private func openListener(logger: Logger) throws(ConfigurationError) -> BrokerProcess.ListeningSocket {
        let opened = try ListenEndpoint.open(
            type: Int32(SOCK_SEQPACKET.rawValue), activationName: "broker", logger: logger
        ) {
            () throws(ConfigurationError) in
            let address = try ListenAddress(parsing: Flags.required(brokerListenAddress, "broker-listen-address"))
            let mode = try SocketOptions.parseMode(Flags.resolve(brokerSocketMode, "broker-socket-mode") ?? "0660")
            let group = try Flags.resolve(brokerSocketGroup, "broker-socket-group").map(SocketOptions.resolveGroup)
            return (address, SocketListener.Options(mode: mode, groupID: group))
        }
        return .init(fd: opened.fd, boundPath: opened.boundPath, name: opened.name)
    }
}
