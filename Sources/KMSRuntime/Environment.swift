#if canImport(Glibc)
    import Glibc
#endif

/// Flag values from the environment: every flag `--some-flag` may come from
/// `VAULT_KUBE_KMS_SOME_FLAG`; a flag given on the command line wins.
public enum EnvironmentFallback {
    public static func variableName(forFlag flag: String) -> String {
        "VAULT_KUBE_KMS_" + String(flag.uppercased().map { $0 == "-" ? "_" : $0 })
    }

    public static func value(_ name: String) -> String? {
        guard let raw = getenv(name) else { return nil }
        let value = String(cString: raw)
        return value.isEmpty ? nil : value
    }

    /// The command-line value, else `VAULT_KUBE_KMS_<FLAG>`, else the first set of `fallbacks`.
    public static func resolve(_ given: String?, flag: String, fallbacks: [String] = []) -> String? {
        if let given { return given }
        if let fromEnv = value(variableName(forFlag: flag)) { return fromEnv }
        for name in fallbacks { if let found = value(name) { return found } }
        return nil
    }
}
