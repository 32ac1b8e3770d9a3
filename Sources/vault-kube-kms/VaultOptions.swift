import ArgumentParser
import Broker
import KMSRuntime

/// The Vault connection and AppRole flags, shared by every subcommand that talks to Vault
/// (serve, broker, preflight). Each flag falls back to `VAULT_KUBE_KMS_<FLAG>`.
struct VaultOptions: ParsableArguments {
    @Option(help: "Vault address (fallback: VAULT_ADDR).")
    var vaultAddress: String?
    @Option(help: "Transit key path: <mount>/keys/<name>.")
    var vaultKeyPath: String?
    @Option(help: "Vault namespace of the Transit mount (fallback: VAULT_NAMESPACE).")
    var vaultNamespace: String?
    @Option(help: "AppRole auth mount (default approle).")
    var authMount: String?
    @Option(help: "AppRole role ID.")
    var approleRoleId: String?
    @Option(help: "File holding the AppRole secret ID; must not be accessible by group or others.")
    var approleSecretIdPath: String?
    @Option(help: "CA certificate file for Vault's TLS certificate (fallback: VAULT_CACERT).")
    var tlsCaFile: String?

    /// The validated broker configuration these flags describe.
    func configuration() throws(ConfigurationError) -> BrokerConfiguration {
        try BrokerConfiguration(
            vaultAddress: Flags.required(vaultAddress, "vault-address", fallbacks: ["VAULT_ADDR"]),
            vaultKeyPath: Flags.required(vaultKeyPath, "vault-key-path"),
            authMount: Flags.resolve(authMount, "auth-mount") ?? "approle",
            roleID: Flags.required(approleRoleId, "approle-role-id"),
            secretIDPath: Flags.required(approleSecretIdPath, "approle-secret-id-path"),
            vaultNamespace: Flags.resolve(vaultNamespace, "vault-namespace", fallbacks: ["VAULT_NAMESPACE"]),
            caFile: Flags.resolve(tlsCaFile, "tls-ca-file", fallbacks: ["VAULT_CACERT"])
        ).validated()
    }
}

/// `--log-level` and `--log-format`.
struct LogOptions: ParsableArguments {
    @Option(help: "trace, debug, info, notice, warning, error or critical (default info).")
    var logLevel: String?
    @Option(help: "json or text (default json).")
    var logFormat: String?

    func resolved() throws -> LoggingOptions {
        try LoggingOptions(level: Flags.resolve(logLevel, "log-level"), format: Flags.resolve(logFormat, "log-format"))
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
}
