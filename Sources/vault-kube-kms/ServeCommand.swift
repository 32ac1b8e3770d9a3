import ArgumentParser
import Broker
import KMSRuntime
import Logging
import VaultClient

#if canImport(Glibc)
    import Glibc
#endif

/// `vault-kube-kms [serve]`: the spawn topology. Creates the KMS socket, starts the front as an
/// unprivileged user with the socket and one end of a socketpair, and serves its requests.
struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve", abstract: "Run the broker and spawn the front (default).")

    @Option(help: "KMS socket kube-apiserver connects to (unix:///path or unix:///@abstract).")
    var listenAddress: String?
    @OptionGroup var vault: VaultOptions
    @Option(help: "User (name or uid) the front runs as (default nobody; as a non-root uid, the broker's own).")
    var frontUser: String?
    @Option(help: "Path of vault-kube-kms-front (default: next to this executable).")
    var frontExecutable: String?
    @Option(help: "Mode of the KMS socket, octal (default 0660; no access for others is allowed).")
    var socketMode: String?
    @Option(help: "Group owning the KMS socket (name or gid; default: the broker's group).")
    var socketGroup: String?
    @Flag(help: "Development only: run the front under the broker's own uid.")
    var insecureSameUser = false
    @Flag(
        help: """
            One-uid topology (a non-root container, a plain user): run the front at the broker's own uid, \
            separated by the kernel (the front's Landlock and seccomp sandbox is required). \
            Chosen without this flag when the broker runs as a non-root uid with no --front-user.
            """)
    var oneUid = false
    @Option(help: "The front's --sandbox: best-effort|required|off (default best-effort; required with --one-uid).")
    var frontSandbox: String?
    @Option(help: "Uid allowed on the KMS socket, checked by the front with SO_PEERCRED (root and the front: always).")
    var allowedClientUid: String?
    @Option(help: "Gid allowed on the KMS socket, checked by the front with SO_PEERCRED.")
    var allowedClientGid: String?
    @Flag(help: "Development only: allow an abstract --listen-address without --allowed-client-uid/-gid.")
    var insecureAbstractListenAddress = false
    @OptionGroup var log: LogOptions
    @OptionGroup var observability: ObservabilityOptions

    func run() throws {
        let logging = try log.resolved()
        LogSetup.bootstrap(process: "broker", level: logging.level, format: logging.format)
        let logger = Logger(label: "broker")
        do {
            try serve(logging: logging, logger: logger)
        } catch {
            logger.critical("startup.failed", metadata: ["reason": "\(error.description)"])
            throw ExitCode(1)
        }
    }

    private func resolve(_ value: String?, _ flag: String) -> String? { Flags.resolve(value, flag) }

    /// `--allowed-client-uid/-gid` for the front (which checks every connection), and the
    /// refusal of an abstract KMS socket that nothing restricts (it has no file permissions).
    private func clientPeerArguments(_ address: ListenAddress) throws(ConfigurationError) -> [String] {
        var arguments: [String] = []
        for flag in ["allowed-client-uid", "allowed-client-gid"] {
            let given = flag == "allowed-client-uid" ? allowedClientUid : allowedClientGid
            guard let text = resolve(given, flag) else { continue }
            guard !text.isEmpty, text.utf8.count <= 10, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                let value = UInt32(text), value != UInt32.max
            else { throw ConfigurationError("--\(flag) must be a number") }
            arguments += ["--\(flag)", "\(value)"]
        }
        if case .abstract(let name) = address, arguments.isEmpty,
            !(insecureAbstractListenAddress || Flags.bool("insecure-abstract-listen-address"))
        {
            throw ConfigurationError(
                "abstract KMS socket unix:///@\(name) is refused: it has no file permissions, so any local user could "
                    + "call Decrypt; use a socket path, or restrict it with --allowed-client-uid/--allowed-client-gid "
                    + "(--insecure-abstract-listen-address allows it for development)")
        }
        return arguments
    }

    private func serve(logging: LoggingOptions, logger: Logger) throws(ConfigurationError) {
        try BrokerProcess.protect()
        let configuration = try vault.configuration()
        guard let listenText = resolve(listenAddress, "listen-address") else {
            // No default: HashiCorp's unix:///tmp/vault-kube-kms.socket is in a directory every
            // local user can write, and the socket directory check refuses it (security-model.md).
            throw ConfigurationError(
                "--listen-address is required (or VAULT_KUBE_KMS_LISTEN_ADDRESS), e.g. unix:///var/run/kmsplugin/kms.sock; "
                    + "there is no default in /tmp, a directory every user can write")
        }
        let address = try ListenAddress(parsing: listenText)
        let clientArguments = try clientPeerArguments(address)
        let mode = try SocketOptions.parseMode(resolve(socketMode, "socket-mode") ?? "0660")
        let group = try resolve(socketGroup, "socket-group").map(SocketOptions.resolveGroup)
        let user = try resolve(frontUser, "front-user").map { spec throws(ConfigurationError) in
            try FrontUser.resolve(spec)
        }
        let plan = try FrontPrivilegePlan.decide(
            user: user, brokerEUID: geteuid(), insecureSameUser: insecureSameUser, oneUID: oneUid)
        if plan == .sameUserInsecure {
            logger.warning("front.same_user", metadata: ["reason": "--insecure-same-user: no privilege separation"])
        }
        let automatic = !oneUid && plan == .oneUID(geteuid())
        let sandbox = try OneUIDTopology.frontSandbox(
            plan: plan, requested: resolve(frontSandbox, "front-sandbox"), automatic: automatic)
        if case .oneUID = plan {
            try OneUIDTopology.checkKernel(automatic: automatic)
            OneUIDTopology.logSelected(automatic: automatic, uid: geteuid(), logger: logger)
        }
        var frontArguments = ["--log-level", logging.level.rawValue, "--log-format", logging.format.rawValue]
        frontArguments += try observability.frontArguments()
        frontArguments += ["--sandbox", sandbox]
        frontArguments += clientArguments
        let options = BrokerProcess.SpawnOptions(
            configuration: configuration, address: address, socket: .init(mode: mode, groupID: group),
            frontExecutable: resolve(frontExecutable, "front-executable") ?? FrontSupervisor.defaultExecutable(),
            plan: plan, frontArguments: frontArguments)
        try BrokerProcess.spawn(options, logger: logger).run()
    }
}
