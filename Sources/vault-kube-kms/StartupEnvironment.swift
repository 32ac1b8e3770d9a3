import KMSRuntime
import Logging

/// Every command that calls Vault reduces its environment to `EnvironmentScrub`'s allowlist once
/// its flags are resolved and before libcurl is initialised (the first `CurlMultiTransport`).
enum StartupEnvironment {
    static func scrub(logger: Logger?) {
        let removed = EnvironmentScrub.apply()
        guard !removed.isEmpty else { return }
        logger?.info(
            "broker.environment.scrubbed",
            metadata: [
                "removed": "\(removed.joined(separator: ","))",
                "reason": "only VAULT_KUBE_KMS_*, Vault, systemd, locale and OpenSSL variables are kept",
            ])
    }
}
