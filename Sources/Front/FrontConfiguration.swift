import KMSRuntime
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// The front's settings, resolved from flags and `VAULT_KUBE_KMS_*` environment variables.
///
/// Flags win over the environment. For the two either-or pairs (`--broker-fd`/`--broker-address`,
/// `--listen-fd`/`--listen-address`) the environment is consulted only when neither flag of the
/// pair is on the command line: in the spawn topology the broker passes `--listen-fd 4` while an
/// environment file shared with the broker may well set `VAULT_KUBE_KMS_LISTEN_ADDRESS`.
public struct FrontConfiguration: Equatable, Sendable {
    /// How the front reaches the broker.
    public enum BrokerEndpoint: Equatable, Sendable {
        /// An inherited, already connected SOCK_SEQPACKET socket (spawn topology: fd 3).
        case inheritedFD(Int32)
        /// A SOCK_SEQPACKET socket to connect to (split topologies).
        case address(ListenAddress)
    }

    /// Where the front serves gRPC.
    public enum ListenEndpoint: Equatable, Sendable {
        /// An inherited, already listening SOCK_STREAM socket (spawn topology: fd 4; socket
        /// activation). The front never binds or unlinks anything then.
        case inheritedFD(Int32)
        /// A socket path the front binds (`socketMode`, `socketGroup`) and removes when it exits.
        case address(ListenAddress)
        /// systemd socket activation (`LISTEN_FDS`): the front serves the inherited listening
        /// stream socket and never unlinks it.
        case socketActivated
    }

    public var broker: BrokerEndpoint
    public var listen: ListenEndpoint
    public var logLevel: Logger.Level
    public var logFormat: LogFormat
    /// Mode of a KMS socket the front binds itself (default 0660: no access for others).
    public var socketMode: mode_t = 0o660
    /// Group of a KMS socket the front binds itself (nil: the front's own group).
    public var socketGroup: gid_t?
    /// Loopback port of `/livez`, `/readyz`, `/healthz` (0: disabled).
    public var healthPort: UInt16 = Self.defaultHealthPort
    /// Loopback port of `/metrics` (0: disabled).
    public var metricsPort: UInt16 = Self.defaultMetricsPort
    /// Who may be the broker at `--broker-address` (checked with SO_PEERCRED before HELLO).
    public var brokerPeer = BrokerPeerPolicy()
    /// Who may connect to the KMS socket (SO_PEERCRED on every accepted connection); nil: the
    /// socket's file permissions alone decide.
    public var clientPeer: ClientPeerPolicy?
    /// Address of the health port (`--health-address`, default 127.0.0.1; metrics stay on loopback).
    public var healthAddress: HealthBindAddress = .loopback
    /// What `/healthz` and `/readyz` mean (`--health-mode`).
    public var healthMode: HealthMode = .deep
    /// Whether `/metrics` carries the `process_*` families (`--disable-runtime-metrics` turns
    /// them off, as it turns off the Go runtime's in HashiCorp's plugin).
    public var runtimeMetrics = true
    /// How the front confines itself once its sockets are open (`--sandbox`, FrontSandbox.swift).
    public var sandbox: SandboxMode = .bestEffort
    /// controller-runtime's conventional health probe port.
    public static let defaultHealthPort: UInt16 = 8081
    /// Prometheus' conventional exporter port.
    public static let defaultMetricsPort: UInt16 = 9090

    public init(
        broker: BrokerEndpoint, listen: ListenEndpoint, logLevel: Logger.Level = .info, logFormat: LogFormat = .json
    ) {
        self.broker = broker
        self.listen = listen
        self.logLevel = logLevel
        self.logFormat = logFormat
    }

    /// Applies `--health-port` and `--metrics-port` (or their environment variables): decimal
    /// 0...65535; 0 or any negative number disables (HashiCorp's convention).
    public mutating func applyPorts(
        healthPort: String?, metricsPort: String?,
        environment: (String) -> String? = EnvironmentFallback.value
    ) throws(ConfigurationError) {
        func port(_ value: String?, _ flag: String, _ fallback: UInt16) throws(ConfigurationError) -> UInt16 {
            let variable = EnvironmentFallback.variableName(forFlag: flag)
            guard let text = value ?? environment(variable) else { return fallback }
            guard let number = Self.parsePort(text) else {
                throw ConfigurationError(
                    "--\(flag) must be a port number 0-65535, or 0 or negative to disable (got \(text.debugDescription))"
                )
            }
            return number
        }
        self.healthPort = try port(healthPort, "health-port", Self.defaultHealthPort)
        self.metricsPort = try port(metricsPort, "metrics-port", Self.defaultMetricsPort)
        if self.healthPort != 0 && self.healthPort == self.metricsPort {
            throw ConfigurationError("--health-port and --metrics-port must differ")
        }
    }

    /// A port: decimal 0...65535, or a negative decimal (disabled, returned as 0).
    static func parsePort(_ text: String) -> UInt16? {
        let negative = text.hasPrefix("-")
        let digits = negative ? text.dropFirst() : Substring(text)
        guard !digits.isEmpty, digits.utf8.count <= 5, digits.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
            return nil
        }
        if negative { return 0 }
        return UInt16(digits)
    }

    /// Applies `--health-address`, `--health-mode` and `--disable-runtime-metrics` (or their
    /// environment variables; a boolean variable is on for 1, true or yes).
    public mutating func applyHealthSettings(
        healthAddress: String?, healthMode: String?, disableRuntimeMetrics: Bool,
        environment: (String) -> String? = EnvironmentFallback.value
    ) throws(ConfigurationError) {
        func env(_ flag: String) -> String? { environment(EnvironmentFallback.variableName(forFlag: flag)) }
        if let text = healthAddress ?? env("health-address") {
            self.healthAddress = try HealthBindAddress(parsing: text)
        }
        if let text = healthMode ?? env("health-mode") {
            guard let mode = HealthMode(rawValue: text) else {
                throw ConfigurationError("--health-mode must be deep or hashicorp (got \(text.debugDescription))")
            }
            self.healthMode = mode
        }
        let disabled =
            disableRuntimeMetrics || ["1", "true", "yes"].contains(env("disable-runtime-metrics")?.lowercased())
        self.runtimeMetrics = !disabled
    }

    /// Resolves raw flag values (nil: flag not given) against the environment
    /// (`VAULT_KUBE_KMS_<FLAG>`, see `EnvironmentFallback`).
    public init(
        brokerFD: String?, brokerAddress: String?, listenFD: String?, listenAddress: String?,
        logLevel: String?, logFormat: String?, socketMode: String? = nil, socketGroup: String? = nil,
        sandbox: String? = nil, environment: (String) -> String? = EnvironmentFallback.value,
        defaultLogFormat: () -> LogFormat = LogFormat.defaultForStderr
    ) throws(ConfigurationError) {
        func env(_ flag: String) -> String? { environment(EnvironmentFallback.variableName(forFlag: flag)) }

        var brokerPair = (fd: brokerFD, address: brokerAddress)
        if brokerPair.fd == nil && brokerPair.address == nil { brokerPair = (env("broker-fd"), env("broker-address")) }
        switch brokerPair {
        case (let fd?, nil): broker = .inheritedFD(try Self.parseFD(fd, flag: "broker-fd"))
        case (nil, let address?): broker = .address(try ListenAddress(parsing: address))
        case (nil, nil): throw ConfigurationError("one of --broker-fd or --broker-address is required")
        default: throw ConfigurationError("--broker-fd and --broker-address are mutually exclusive")
        }

        var listenPair = (fd: listenFD, address: listenAddress)
        if listenPair.fd == nil && listenPair.address == nil { listenPair = (env("listen-fd"), env("listen-address")) }
        switch listenPair {
        case (let fd?, nil): listen = .inheritedFD(try Self.parseFD(fd, flag: "listen-fd"))
        case (nil, let address?): listen = .address(try ListenAddress(parsing: address))
        case (nil, nil):
            // Socket activation only when neither flag nor variable names a socket.
            guard environment("LISTEN_FDS") != nil else {
                throw ConfigurationError("one of --listen-fd or --listen-address is required (or socket activation)")
            }
            listen = .socketActivated
        default: throw ConfigurationError("--listen-fd and --listen-address are mutually exclusive")
        }
        if case .inheritedFD(let a) = broker, case .inheritedFD(let b) = listen, a == b {
            throw ConfigurationError("--broker-fd and --listen-fd must differ")
        }

        let levelText = logLevel ?? env("log-level") ?? "info"
        guard let level = LogLevelName.parse(levelText) else {
            throw ConfigurationError("invalid log level \(levelText.debugDescription) (\(LogLevelName.accepted))")
        }
        self.logLevel = level
        let formatText = logFormat ?? env("log-format") ?? defaultLogFormat().rawValue
        guard let format = LogFormat(rawValue: formatText) else {
            throw ConfigurationError("invalid log format \(formatText.debugDescription) (json|text|journald)")
        }
        self.logFormat = format
        if let modeText = socketMode ?? env("socket-mode") {
            self.socketMode = try SocketOptions.parseMode(modeText)
        }
        if let groupText = socketGroup ?? env("socket-group") {
            self.socketGroup = try SocketOptions.resolveGroup(groupText)
        }
        if let sandboxText = sandbox ?? env("sandbox") {
            guard let mode = SandboxMode(rawValue: sandboxText) else {
                throw ConfigurationError(
                    "invalid sandbox mode \(sandboxText.debugDescription) (best-effort|required|off)")
            }
            self.sandbox = mode
        }
    }

    /// A descriptor number: decimal, at least 3 (0-2 are stdio), at most Int32.max.
    static func parseFD(_ text: String, flag: String) throws(ConfigurationError) -> Int32 {
        guard !text.isEmpty, text.utf8.count <= 10, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
            let value = Int32(text), value >= 3
        else {
            throw ConfigurationError(
                "--\(flag) must be a file descriptor number of at least 3 (got \(text.debugDescription))")
        }
        return value
    }
}

/// What the health port's `/healthz` and `/readyz` answer (`/livez` and `/readyz/deep` are the
/// same in both modes).
public enum HealthMode: String, Equatable, Sendable {
    /// Ours (default): `/healthz` = `/livez` (both processes alive, the broker's loop answered a
    /// heartbeat); `/readyz` = a Status asked now answers ok (Vault reachable, token, key).
    case deep
    /// HashiCorp's: `/healthz` 200 while the process lives; `/readyz` 200 once gRPC serves (the
    /// KMS socket listens and the broker answered HELLO), else 500 `plugin is not ready`.
    case hashicorp
}
