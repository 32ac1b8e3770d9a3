#if canImport(Glibc)
    import Glibc
#endif

/// The broker's environment, reduced to an allowlist at start, before libcurl and OpenSSL are
/// initialised: libcurl reads `http_proxy`, `HTTPS_PROXY`, `ALL_PROXY` and `NO_PROXY`, and
/// libcurl/OpenSSL write TLS secrets to `SSLKEYLOGFILE`. kubeadm copies the node's proxy variables
/// into static Pods, so such variables arrive by accident; a proxy must be asked for explicitly
/// (`--vault-proxy`). What stays: the plugin's own `VAULT_KUBE_KMS_*` settings and Vault
/// fallbacks, systemd's protocol variables, locale and time zone, and OpenSSL's configuration
/// (`OPENSSL_CONF`, `OPENSSL_MODULES`: the FIPS provider) and trust store (`SSL_CERT_FILE`,
/// `SSL_CERT_DIR`).
public enum EnvironmentScrub {
    public static let allowedNames: Set<String> = [
        "PATH", "HOME", "TZ", "LANG", "LANGUAGE",
        "VAULT_ADDR", "VAULT_NAMESPACE", "VAULT_CACERT",
        "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES",
        "JOURNAL_STREAM", "INVOCATION_ID", "CREDENTIALS_DIRECTORY", "RUNTIME_DIRECTORY",
        "OPENSSL_CONF", "OPENSSL_MODULES", "SSL_CERT_FILE", "SSL_CERT_DIR",
    ]
    public static let allowedPrefixes = ["VAULT_KUBE_KMS_", "LC_"]

    public static func isAllowed(_ name: String) -> Bool {
        allowedNames.contains(name) || allowedPrefixes.contains { name.hasPrefix($0) }
    }

    /// The names of the variables set now.
    public static func currentNames() -> [String] {
        var names: [String] = []
        var entry = environ
        while let pointer = entry.pointee {
            let text = String(cString: pointer)
            names.append(String(text.prefix { $0 != "=" }))
            entry += 1
        }
        return names
    }

    /// Removes every variable the allowlist does not name; returns the removed names, sorted
    /// (names only: values may be secrets).
    @discardableResult
    public static func apply() -> [String] {
        let removed = Set(currentNames().filter { !isAllowed($0) }).sorted()
        for name in removed { unsetenv(name) }
        return removed
    }
}
