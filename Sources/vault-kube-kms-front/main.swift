// vault-kube-kms-front: the unprivileged gRPC front of vault-kube-kms. It holds no credential
// and makes no outbound connection; every KMS call is forwarded to the broker. Parse, validate,
// wire, run: everything else lives in the Front module.
import ArgumentParser
import Front
import KMSCommandLine
import KMSRuntime

struct FrontCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vault-kube-kms-front",
        abstract: "The unprivileged KMS v2 gRPC front of vault-kube-kms (normally started by the broker).",
        discussion: "Every option can also be set with its VAULT_KUBE_KMS_* environment variable; flags win.")

    @Option(
        name: .customLong("broker-fd"),
        help: "Connected SOCK_SEQPACKET socket to the broker (VAULT_KUBE_KMS_BROKER_FD).")
    var brokerFD: String?

    @Option(help: "Broker socket to connect to, unix:///path (VAULT_KUBE_KMS_BROKER_ADDRESS).")
    var brokerAddress: String?

    @Option(
        help: """
            Uid the broker at --broker-address must have (SO_PEERCRED, checked before HELLO; uid 0 is \
            always accepted) (VAULT_KUBE_KMS_BROKER_UID, default: the owner of the broker socket).
            """)
    var brokerUid: String?

    @Option(help: "Gid the broker at --broker-address must have (VAULT_KUBE_KMS_BROKER_GID, default: any).")
    var brokerGid: String?

    @Flag(help: "Development only: allow an abstract --broker-address (unix:///@name), which any local user can bind.")
    var insecureAbstractBrokerAddress = false

    @Option(
        help:
            "Uid allowed on the KMS socket (SO_PEERCRED; root and the front always) (VAULT_KUBE_KMS_ALLOWED_CLIENT_UID)."
    )
    var allowedClientUid: String?

    @Option(help: "Gid allowed on the KMS socket (SO_PEERCRED per connection) (VAULT_KUBE_KMS_ALLOWED_CLIENT_GID).")
    var allowedClientGid: String?

    @Flag(help: "Development only: allow an abstract --listen-address without --allowed-client-uid/-gid.")
    var insecureAbstractListenAddress = false

    @Option(name: .customLong("listen-fd"), help: "Listening SOCK_STREAM socket for gRPC (VAULT_KUBE_KMS_LISTEN_FD).")
    var listenFD: String?

    @Option(
        help: """
            gRPC socket to bind, unix:///path or unix:///@abstract (VAULT_KUBE_KMS_LISTEN_ADDRESS); \
            without it and --listen-fd, a socket-activated one (LISTEN_FDS) is served.
            """)
    var listenAddress: String?

    @Option(help: "Mode of the socket --listen-address binds, octal (VAULT_KUBE_KMS_SOCKET_MODE, default 0660).")
    var socketMode: String?

    @Option(help: "Group owning the socket --listen-address binds, name or gid (VAULT_KUBE_KMS_SOCKET_GROUP).")
    var socketGroup: String?

    @Option(
        help: "trace|debug|info|notice|warning|error|critical, or zap's (VAULT_KUBE_KMS_LOG_LEVEL, default info).")
    var logLevel: String?

    @Option(
        help: "json|text|journald (VAULT_KUBE_KMS_LOG_FORMAT; default journald when stderr is the journal, else json).")
    var logFormat: String?

    @Option(
        help: "Port for /livez /readyz /healthz, 0 or negative disables (VAULT_KUBE_KMS_HEALTH_PORT, default 8081).")
    var healthPort: String?

    @Option(
        help: """
            IP address of the health port (VAULT_KUBE_KMS_HEALTH_ADDRESS, default 127.0.0.1; 0.0.0.0 \
            for httpGet probes of a hostNetwork Pod).
            """)
    var healthAddress: String?

    @Option(
        help: """
            deep: /readyz asks the broker for Status (default); hashicorp: /healthz always 200, \
            /readyz 200 once gRPC serves (VAULT_KUBE_KMS_HEALTH_MODE).
            """)
    var healthMode: String?

    @Option(help: "Loopback port for /metrics, 0 or negative disables (VAULT_KUBE_KMS_METRICS_PORT, default 9090).")
    var metricsPort: String?

    @Flag(help: "Leave the process_* families out of /metrics (VAULT_KUBE_KMS_DISABLE_RUNTIME_METRICS).")
    var disableRuntimeMetrics = false

    @Option(
        help: """
            best-effort|required|off (VAULT_KUBE_KMS_SANDBOX, default best-effort): Landlock and seccomp \
            once the sockets are open; required refuses to start without them; off is for debugging only.
            """)
    var sandbox: String?

    /// The settings these flags (and the environment) describe.
    func configuration() throws(ConfigurationError) -> FrontConfiguration {
        var configuration = try FrontConfiguration(
            brokerFD: brokerFD, brokerAddress: brokerAddress, listenFD: listenFD, listenAddress: listenAddress,
            logLevel: logLevel, logFormat: logFormat, socketMode: socketMode, socketGroup: socketGroup,
            sandbox: sandbox)
        try configuration.applyPorts(healthPort: healthPort, metricsPort: metricsPort)
        try configuration.applyHealthSettings(
            healthAddress: healthAddress, healthMode: healthMode, disableRuntimeMetrics: disableRuntimeMetrics)
        try configuration.applyClientPeer(
            allowedClientUID: allowedClientUid, allowedClientGID: allowedClientGid,
            insecureAbstractListenAddress: insecureAbstractListenAddress)
        try configuration.applyBrokerPeer(
            brokerUID: brokerUid, brokerGID: brokerGid, insecureAbstractBrokerAddress: insecureAbstractBrokerAddress)
        return configuration
    }

    func run() throws {
        let configuration: FrontConfiguration
        do {
            configuration = try self.configuration()
        } catch {
            throw ValidationError(error.description)
        }
        let status = FrontProcess.run(configuration)
        if status != 0 { throw ExitCode(status) }
    }
}

// The real argv (captured in C, not /proc/self/cmdline: see KMSRuntime.ProcessArguments), with
// Go's flag spellings rewritten for the parser (GoStyleArguments).
let arguments = Array(ProcessArguments.current(program: "vault-kube-kms-front").dropFirst())
FrontCommand.main(FrontCommand.goStyleArguments(arguments))
