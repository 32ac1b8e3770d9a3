import Testing

@testable import KMSRuntime

/// Issue 13 finding 3: the broker's environment allowlist keeps its own settings and drops
/// whatever would configure libcurl or OpenSSL behind its back.
struct EnvironmentScrubTests {
    @Test(arguments: [
        "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy",
        "SSLKEYLOGFILE", "CURL_CA_BUNDLE", "LD_PRELOAD", "VAULT_TOKEN", "AWS_SECRET_ACCESS_KEY", "VAULT_KUBE_KMSX",
    ])
    func ambientConfigurationIsDropped(name: String) {
        #expect(!EnvironmentScrub.isAllowed(name))
    }

    @Test(arguments: [
        "VAULT_KUBE_KMS_VAULT_ADDRESS", "VAULT_KUBE_KMS_VAULT_PROXY", "VAULT_ADDR", "VAULT_CACERT", "NOTIFY_SOCKET",
        "WATCHDOG_USEC", "LISTEN_FDS", "LISTEN_FDNAMES", "JOURNAL_STREAM", "OPENSSL_CONF", "SSL_CERT_FILE", "LC_ALL",
        "PATH",
    ])
    func thePluginsOwnAndSystemdsVariablesStay(name: String) {
        #expect(EnvironmentScrub.isAllowed(name))
    }

    @Test func theCurrentNamesAreReadFromEnviron() {
        #expect(EnvironmentScrub.currentNames().contains("PATH"))
        #expect(EnvironmentScrub.currentNames().allSatisfy { !$0.contains("=") })
    }
}
