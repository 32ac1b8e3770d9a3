import KMSRuntime
import Testing

@testable import VaultClient

/// TLS and duration flags: what reaches libcurl, and what is refused at startup.
struct TLSOptionsTests {
    @Test func anSNINameBecomesTheURLHostAndTheConnectionGoesToTheAddress() {
        let options = CurlMultiTransport.Options(baseURL: "https://10.0.0.5:8200", serverName: "vault.example.com")
        #expect(options.requestBaseURL == "https://vault.example.com:8200")
        #expect(options.connectTo == "vault.example.com:8200:10.0.0.5:8200")
    }

    @Test func withoutSNITheAddressIsUsedAsIs() {
        let options = CurlMultiTransport.Options(baseURL: "https://127.0.0.1:8200")
        #expect(options.requestBaseURL == "https://127.0.0.1:8200")
        #expect(options.connectTo == nil)
    }

    @Test func theDefaultPortAndIPv6LiteralsAreHandled() {
        let plain = HostPort(baseURL: "https://vault")
        #expect(plain?.host == "vault" && plain?.port == 443 && plain?.scheme == "https")
        let literal = HostPort(baseURL: "http://[::1]:8200")
        #expect(literal?.host == "::1" && literal?.port == 8200)
        let options = CurlMultiTransport.Options(baseURL: "https://[::1]:8200", serverName: "vault.local")
        #expect(options.connectTo == "vault.local:8200:[::1]:8200")
    }

    @Test func aClientCertificateWithoutItsKeyIsRefused() {
        var configuration = Self.base
        configuration.tlsClientCertFile = "/etc/vkk/client.pem"
        #expect(throws: ConfigurationError.self) { try configuration.validated() }
        configuration.tlsClientKeyFile = "/etc/vkk/client.key"
        #expect((try? configuration.validated()) != nil)
    }

    @Test(arguments: ["vault example", "-bad", "a/b", "x\n"])
    func aServerNameThatIsNotAHostNameIsRefused(name: String) {
        var configuration = Self.base
        configuration.tlsServerName = name
        #expect(throws: ConfigurationError.self) { try configuration.validated() }
    }

    @Test func tlsOptionsOnAPlainHTTPAddressAreWarnedAbout() throws {
        var configuration = Self.base
        configuration.vaultAddress = "http://127.0.0.1:8200"
        configuration.tlsSkipVerify = true
        #expect(try configuration.validated().warnings.count == 1)
    }

    @Test(arguments: [("250ms", 250), ("30s", 30_000), ("5m", 300_000), ("1h", 3_600_000), ("1m30s", 90_000)])
    func durationsAreReadLikeGoDurations(text: String, millis: Int) throws {
        #expect(try DurationText.millis(text, flag: "key-check-interval") == millis)
    }

    @Test(arguments: ["", "30", "0s", "5 m", "1d", "-5s", "ms"])
    func malformedDurationsAreRefusedNamingTheFlag(text: String) {
        #expect {
            try DurationText.millis(text, flag: "key-check-interval")
        } throws: { error in
            (error as? ConfigurationError)?.description.contains("--key-check-interval") == true
        }
    }

    @Test func theTLSLibraryReportsAnOpenSSLVersion() {
        #expect(TLSLibraryInfo.current().openSSLVersion.hasPrefix("OpenSSL"))
    }

    static let base = BrokerConfiguration(
        vaultAddress: "https://127.0.0.1:8200", vaultKeyPath: "transit/keys/kek", roleID: "role",
        secretIDPath: "/tmp/secret-id")
}
