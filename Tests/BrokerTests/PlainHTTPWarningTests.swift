import KMSRuntime
import KMSTestSupport
import Testing

@testable import Broker
@testable import VaultClient

/// Issue 13 finding 7: a plain http:// Vault address warns at start and at every health change,
/// like --tls-skip-verify.
struct PlainHTTPWarningTests {
    @Test func anHTTPVaultAddressIsWarnedAboutAtStartAndOnHealthChanges() throws {
        let harness = try BrokerHarness()  // http://127.0.0.1:8200
        #expect(harness.startAndWaitHealthy())
        runLoop(harness.loop, forMillis: 1200)  // the health watcher logs the change to "ok"
        let warnings = harness.logs.events(named: "broker.vault.plaintext")
        #expect(warnings.count >= 2, "\(warnings.count) warnings")
        #expect(warnings.first?.fields["vault"] == "http://127.0.0.1:8200")
        #expect(warnings.first?.level == .warning)
        #expect(warnings.first?.fields["reason"]?.contains("unencrypted") == true)
    }
}
