import ArgumentParser
import Broker
import KMSRuntime
import VaultClient

/// The Vault connection and AppRole flags, shared by every subcommand that talks to Vault
/// (serve, broker, preflight). Each flag falls back to `VAULT_KUBE_KMS_<FLAG>`.
struct VaultOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Vault address (fallback: VAULT_ADDR); several nodes as a comma-separated list or a repeated flag.",
            discussion: "The first address is preferred; the broker moves to the next one when it cannot serve."))
    var vaultAddress: [String] = []
    @Option(help: "Transit key path: <mount>/keys/<name>.")
    var vaultKeyPath: String?
    @Option(help: "Transit mount, with --transit-key (default transit); same as --vault-key-path <mount>/keys/<key>.")
    var transitMount: String?
    @Option(help: "Transit key name, with --transit-mount; same as --vault-key-path <mount>/keys/<key>.")
    var transitKey: String?
    @Option(help: "Vault namespace of the Transit mount (fallback: VAULT_NAMESPACE).")
    var vaultNamespace: String?
    @Option(help: "Vault namespace of the AppRole login (default: --vault-namespace).")
    var vaultAuthNamespace: String?
    @Option(help: "Vault auth method: approle, the only one (accepted for HashiCorp's command lines).")
    var authMethod: String?
    @Option(help: "AppRole auth mount (default approle).")
    var authMount: String?
    @Option(help: "AppRole role ID.")
    var approleRoleId: String?
    @Option(help: "File holding the AppRole secret ID; must not be accessible by group or others.")
    var approleSecretIdPath: String?
    @Option(help: "CA certificate file for Vault's TLS certificate (fallback: VAULT_CACERT).")
    var tlsCaFile: String?
    @Option(help: "TLS server name to present and verify (Vault behind a load balancer).")
    var tlsSni: String?
    @Option(help: "Client certificate (PEM) for Vault listeners that require one.")
    var tlsClientCert: String?
    @Option(help: "Key (PEM) of --tls-client-cert.")
    var tlsClientKey: String?
    @Flag(help: "Development only: do not verify Vault's certificate (logged loudly).")
    var tlsSkipVerify = false
    @Option(help: "TCP and TLS connect timeout of Vault calls (default 5s).")
    var vaultConnectionTimeout: String?
    @Option(help: "Timeout of Vault calls without a gRPC deadline (default 10s).")
    var vaultRequestTimeout: String?
    @Option(help: "Interval of the key metadata probe (default 30s).")
    var keyCheckInterval: String?
    @Option(help: "Interval of the encrypt/decrypt round-trip probe (default 5m).")
    var deepCheckInterval: String?
    @Flag(help: "Refuse to serve unless Vault reports an Enterprise license.")
    var requireEnterprise = false
    @Option(
        help: "Proxy for Vault calls, http(s):// or socks5(h)://host:port (default none; http_proxy etc. are ignored)."
    )
    var vaultProxy: String?
    @Flag(
        help: ArgumentHelp(
            "Takeover mode: also decrypt data another plugin wrote under its own key_ids (vault:vN: of this key, N known).",
            discussion: "Counted in vault_kube_kms_foreign_key_id_decrypts_total; see docs/operations.md."))
    var acceptForeignKeyIds = false

    /// The validated broker configuration these flags describe.
    func configuration() throws(ConfigurationError) -> BrokerConfiguration {
        if let method = Flags.resolve(authMethod, "auth-method"), method != "approle" {
            throw ConfigurationError(
                "--auth-method \(method.debugDescription) is not supported: vault-kube-kms logs in with AppRole only "
                    + "(--auth-method approle, --approle-role-id, --approle-secret-id-path)")
        }
        let keyPath = try resolvedKeyPath()
        let namespace = Flags.resolve(vaultNamespace, "vault-namespace", fallbacks: ["VAULT_NAMESPACE"])
        var configuration = BrokerConfiguration(
            vaultAddress: try Flags.required(
                vaultAddress.isEmpty ? nil : vaultAddress.joined(separator: ","), "vault-address",
                fallbacks: ["VAULT_ADDR"]),
            vaultKeyPath: keyPath,
            authMount: Flags.resolve(authMount, "auth-mount") ?? "approle",
            roleID: try Flags.required(approleRoleId, "approle-role-id"),
            secretIDPath: try Flags.required(approleSecretIdPath, "approle-secret-id-path"),
            vaultNamespace: namespace,
            authNamespace: Flags.resolve(vaultAuthNamespace, "vault-auth-namespace"),
            caFile: Flags.resolve(tlsCaFile, "tls-ca-file", fallbacks: ["VAULT_CACERT"]),
            connectTimeoutMillis: try Flags.millis(vaultConnectionTimeout, "vault-connection-timeout") ?? 5000,
            requestTimeoutMillis: try Flags.millis(vaultRequestTimeout, "vault-request-timeout") ?? 10_000,
            keyCheckIntervalMillis: try Flags.millis(keyCheckInterval, "key-check-interval") ?? 30_000,
            deepCheckIntervalMillis: try Flags.millis(deepCheckInterval, "deep-check-interval") ?? 300_000,
            tlsServerName: Flags.resolve(tlsSni, "tls-sni"),
            tlsClientCertFile: Flags.resolve(tlsClientCert, "tls-client-cert"),
            tlsClientKeyFile: Flags.resolve(tlsClientKey, "tls-client-key"),
            tlsSkipVerify: tlsSkipVerify || Flags.bool("tls-skip-verify"),
            requireEnterprise: requireEnterprise || Flags.bool("require-enterprise"))
        configuration.vaultProxy = Flags.resolve(vaultProxy, "vault-proxy")
        configuration.acceptForeignKeyIDs = acceptForeignKeyIds || Flags.bool("accept-foreign-key-ids")
        return try configuration.validated()
    }
}

extension VaultOptions {
    /// `--vault-key-path`, or HashiCorp's `--transit-mount` (default `transit`) with
    /// `--transit-key`; both spellings at once must agree.
    func resolvedKeyPath() throws(ConfigurationError) -> String {
        let given = Flags.resolve(vaultKeyPath, "vault-key-path")
        let mount = Flags.resolve(transitMount, "transit-mount")
        guard let key = Flags.resolve(transitKey, "transit-key") else {
            if mount != nil && given == nil {
                throw ConfigurationError("--transit-mount needs --transit-key (or give --vault-key-path)")
            }
            return try Flags.required(given, "vault-key-path")
        }
        let fromTransit = "\(mount ?? "transit")/keys/\(key)"
        if let given, given != fromTransit {
            throw ConfigurationError(
                "--vault-key-path \(given) and --transit-mount/--transit-key (\(fromTransit)) disagree: give one")
        }
        return fromTransit
    }
}

/// `--log-level` (or `--zap-log-level`) and `--log-format`.
struct LogOptions: ParsableArguments {
    @Option(help: "trace, debug, info, notice, warning, error or critical (default info); zap's names too.")
    var logLevel: String?
    @Option(help: "HashiCorp's spelling of --log-level: debug, info, error, panic, or an integer > 0 (more verbose).")
    var zapLogLevel: String?
    @Option(help: "json, text or journald (default journald when stderr is the journal, else json).")
    var logFormat: String?

    func resolved() throws -> LoggingOptions {
        try LoggingOptions(
            level: Flags.resolve(logLevel, "log-level"), format: Flags.resolve(logFormat, "log-format"),
            zapLevel: Flags.resolve(zapLogLevel, "zap-log-level"))
    }
}

/// Flag values with their environment fallbacks.
enum Flags {
    static func resolve(_ value: String?, _ flag: String, fallbacks: [String] = []) -> String? {
        EnvironmentFallback.resolve(value, flag: flag, fallbacks: fallbacks)
    }

    static func required(_ value: String?, _ flag: String, fallbacks: [String] = []) throws(ConfigurationError)
        -> String
    {
        guard let found = resolve(value, flag, fallbacks: fallbacks) else {
            throw ConfigurationError("--\(flag) is required (or \(EnvironmentFallback.variableName(forFlag: flag)))")
        }
        return found
    }

    /// A duration flag (`250ms`, `30s`, `5m`) in milliseconds, nil when not given.
    static func millis(_ value: String?, _ flag: String) throws(ConfigurationError) -> Int? {
        guard let text = resolve(value, flag) else { return nil }
        return try DurationText.millis(text, flag: flag)
    }

    /// A boolean flag's environment variable: `1`, `true` or `yes` turn it on.
    static func bool(_ flag: String) -> Bool {
        guard let value = EnvironmentFallback.value(EnvironmentFallback.variableName(forFlag: flag)) else {
            return false
        }
        return ["1", "true", "yes"].contains(value.lowercased())
    }
}
