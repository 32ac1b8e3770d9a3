import KMSRuntime
import Testing

@testable import VaultClient

struct BrokerConfigurationTests {
    private func parse(_ path: String) -> TransitKeyPath? { try? TransitKeyPath(parsing: path) }

    @Test func keyPathSplitsAtTheLastKeysSegment() throws {
        #expect(parse("transit/keys/kek") == (try TransitKeyPath(parsing: "transit/keys/kek")))
        let nested = try #require(parse("kms/transit/keys/kek"))
        #expect(nested.mount == "kms/transit")
        #expect(nested.keyName == "kek")
        let tricky = try #require(parse("a/keys/b/keys/k-1.v2"))
        #expect(tricky.mount == "a/keys/b")
        #expect(tricky.keyName == "k-1.v2")
    }

    @Test(arguments: [
        "kek", "transit/kek", "/transit/keys/kek", "transit/keys/kek/", "transit//keys/kek", "../transit/keys/kek",
        "transit/../x/keys/kek", "transit/keys/", "transit/keys/-kek", "transit/keys/kek.", "transit/keys/k k",
        "transit/keys/k/x", "keys/kek", "tran sit/keys/kek", "transit/keys/ké",
    ])
    func invalidKeyPathsAreRefused(path: String) {
        #expect(parse(path) == nil)
    }

    private func addresses(_ list: String) throws -> [String] {
        try BrokerConfiguration(
            vaultAddress: list, vaultKeyPath: "transit/keys/kek", roleID: "role", secretIDPath: "/etc/kms/secret-id"
        ).validated().vaultAddresses
    }

    @Test func oneAddressIsAListOfOne() throws {
        let checked = try BrokerConfiguration(
            vaultAddress: "https://vault.example:8200/", vaultKeyPath: "transit/keys/kek", roleID: "role",
            secretIDPath: "/etc/kms/secret-id"
        ).validated()
        #expect(checked.vaultAddresses == ["https://vault.example:8200"])
        #expect(checked.vaultAddress == "https://vault.example:8200")
    }

    @Test func aCommaSeparatedListKeepsItsOrderAndTheFirstIsTheAddress() throws {
        let list = "https://a.example:8200, https://b.example:8200/ ,http://10.0.0.3:8200"
        #expect(try addresses(list) == ["https://a.example:8200", "https://b.example:8200", "http://10.0.0.3:8200"])
        let checked = try BrokerConfiguration(
            vaultAddress: list, vaultKeyPath: "transit/keys/kek", roleID: "role", secretIDPath: "/etc/kms/secret-id"
        ).validated()
        #expect(checked.vaultAddress == "https://a.example:8200")
        // The broker validates the configuration main validated: the list survives.
        #expect(try checked.validated().vaultAddresses == checked.vaultAddresses)
    }

    @Test(arguments: [
        ("https://a:8200,,https://b:8200", "empty entry"), ("https://a:8200,", "empty entry"),
        ("https://a:8200,https://a:8200/", "listed twice"), ("https://a:8200,ftp://b", "must start with http"),
        ((1...9).map { "https://n\($0):8200" }.joined(separator: ","), "at most 8"),
    ])
    func badAddressListsAreRefusedByName(list: String, message: String) {
        #expect {
            try addresses(list)
        } throws: { error in
            "\(error)".contains(message)
        }
    }

    @Test func validatingTwiceKeepsEachWarningOnce() throws {
        // main validates, then BrokerService validates the result again (twice on the spawn path):
        // the plain-http warning must still be there exactly once, next to a parsing warning.
        var configuration = BrokerConfiguration(
            vaultAddress: "http://127.0.0.1:8200", vaultKeyPath: "transit/keys/kek", roleID: "role",
            secretIDPath: "/etc/kms/secret-id", caFile: "/etc/kms/ca.pem")
        configuration.warnings = ["--old-flag is deprecated"]
        let once = try configuration.validated()
        let thrice = try once.validated().validated()
        let plain = "TLS options are set but the Vault address is http://: they have no effect"
        #expect(once.warnings == ["--old-flag is deprecated", plain])
        #expect(thrice.warnings == once.warnings)
    }

    @Test func validationNormalisesAndChecksTheRest() throws {
        let configuration = BrokerConfiguration(
            vaultAddress: "https://vault.example:8200/", vaultKeyPath: "transit/keys/kek", roleID: "role",
            secretIDPath: "/etc/kms/secret-id", vaultNamespace: "", caFile: "")
        let checked = try configuration.validated()
        #expect(checked.vaultAddress == "https://vault.example:8200")
        #expect(checked.vaultNamespace == nil)
        #expect(checked.caFile == nil)
        #expect(checked.authMount == "approle")
        #expect(checked.connectTimeoutMillis == 5000)
        #expect(checked.requestTimeoutMillis == 10_000)
        #expect(checked.keyCheckIntervalMillis == 30_000)
    }

    @Test func badFieldsAreRefusedWithoutEchoingSecrets() {
        func refused(_ change: (inout BrokerConfiguration) -> Void) -> Bool {
            var configuration = BrokerConfiguration(
                vaultAddress: "http://127.0.0.1:8200", vaultKeyPath: "transit/keys/kek", roleID: "role",
                secretIDPath: "/s")
            change(&configuration)
            return (try? configuration.validated()) == nil
        }
        #expect(refused { $0.vaultAddress = "127.0.0.1:8200" })
        #expect(refused { $0.vaultAddress = "http://127.0.0.1:8200/v1" })
        #expect(refused { $0.vaultAddress = "http://user:pw@vault" })
        #expect(refused { $0.authMount = "/approle" })
        #expect(refused { $0.authMount = "app//role" })
        #expect(refused { $0.roleID = "" })
        #expect(refused { $0.secretIDPath = "relative/secret" })
        #expect(refused { $0.vaultNamespace = "ns/../root" })
        #expect(refused { $0.requestTimeoutMillis = 0 })
        #expect(!refused { $0.vaultNamespace = "team-a/child" })
    }
}

/// Issue 13 finding 3: `--vault-proxy` is the only way to a proxy, and it carries no credentials.
struct VaultProxyConfigurationTests {
    static func configuration(proxy: String?) -> BrokerConfiguration {
        var configuration = BrokerConfiguration(
            vaultAddress: "https://vault.example:8200", vaultKeyPath: "transit/keys/kek", roleID: "role",
            secretIDPath: "/etc/secret-id")
        configuration.vaultProxy = proxy
        return configuration
    }

    @Test(arguments: ["http://proxy:3128", "https://proxy.example:443/", "socks5h://127.0.0.1:1080"])
    func proxyURLsAreAccepted(proxy: String) throws {
        let checked = try Self.configuration(proxy: proxy).validated()
        #expect(checked.vaultProxy == (proxy.hasSuffix("/") ? String(proxy.dropLast()) : proxy))
        #expect(CurlMultiTransport.Options(checked).proxy == checked.vaultProxy)
    }

    @Test(arguments: ["proxy:3128", "ftp://proxy", "http://user:secret@proxy:3128", "http://proxy/path", "http://"])
    func otherProxyValuesAreRefusedWithoutEchoingThem(proxy: String) {
        #expect {
            _ = try Self.configuration(proxy: proxy).validated()
        } throws: { error in
            "\(error)".hasPrefix("--vault-proxy must be") && !"\(error)".contains("secret")
        }
    }

    @Test func withoutTheFlagThereIsNoProxy() throws {
        let checked = try Self.configuration(proxy: nil).validated()
        #expect(checked.vaultProxy == nil)
        #expect(CurlMultiTransport.Options(checked).proxy == nil)
        #expect(try Self.configuration(proxy: "").validated().vaultProxy == nil)
    }
}
