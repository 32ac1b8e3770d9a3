import KMSRuntime
import KMSTestSupport
import Testing

@testable import Broker
@testable import VaultClient

#if canImport(Glibc)
    import Glibc
#endif

/// Issue 13 finding 7: --tls-client-key gets the secret-ID file's owner and mode checks at start.
struct PrivateKeyFileTests {
    static func service(keyMode: mode_t) throws(ConfigurationError) -> BrokerService? {
        let directory = TemporaryDirectory()
        let secret = directory.write("secret-id", "s-1\n")
        let cert = directory.write("client.pem", "-----BEGIN CERTIFICATE-----\n", mode: 0o644)
        let key = directory.write("client-key.pem", "-----BEGIN PRIVATE KEY-----\n", mode: keyMode)
        let loop = try! EventLoop()
        let configuration = BrokerConfiguration(
            vaultAddress: "https://vault.test:8200", vaultKeyPath: "transit/keys/kek", roleID: "role",
            secretIDPath: secret, tlsClientCertFile: cert, tlsClientKeyFile: key)
        return try BrokerService(
            configuration: configuration, loop: loop, logger: LogCapture().logger, transport: FakeVault(loop: loop))
    }

    @Test func aClientKeyReadableByGroupOrOthersStopsStartup() {
        #expect {
            _ = try Self.service(keyMode: 0o644)
        } throws: { error in
            "\(error)".contains("TLS client key") && "\(error)".contains("(mode 0644); chmod 0400")
                && !"\(error)".contains("PRIVATE KEY")
        }
        #expect(throws: ConfigurationError.self) { _ = try Self.service(keyMode: 0o640) }
    }

    @Test func aClientKeyOnlyItsOwnerCanReadIsAccepted() throws {
        #expect(try Self.service(keyMode: 0o400) != nil)
        #expect(try Self.service(keyMode: 0o600) != nil)
    }

    @Test func aMissingOrForeignKeyIsRefused() throws {
        let directory = TemporaryDirectory()
        #expect(throws: ConfigurationError.self) { try PrivateKeyFile.check(path: directory.path + "/none.pem") }
        let key = directory.write("key.pem", "k", mode: 0o400)
        chown(key, 4321, 4321)
        #expect {
            try PrivateKeyFile.check(path: key)
        } throws: { error in "\(error)".contains("owned by uid 4321") }
    }
}
