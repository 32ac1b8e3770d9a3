import KMSRuntime
import KMSTestSupport
import Testing

@testable import Broker
@testable import VaultClient

/// Shutdown ends with `auth/token/revoke-self` (BrokerService+Revoke.swift).
struct BrokerRevokeTests {
    @Test func shutdownRevokesTheTokenAfterTheVaultCallsThenCompletes() throws {
        let harness = try BrokerHarness()
        #expect(harness.startAndWaitHealthy())
        harness.vault.script = { $0.path.hasSuffix("revoke-self") ? .json(status: 204, "") : nil }
        var done = false
        harness.service.shutdown { done = true }
        #expect(runLoop(harness.loop) { done })
        let revokes = harness.vault.requests(to: "auth/token/revoke-self")
        #expect(revokes.count == 1)
        #expect(revokes.first?.method == .post)
        #expect(revokes.first?.hadToken == true)
        #expect(!harness.logs.events(named: "broker.token.revoked").isEmpty)
    }

    @Test func withoutATokenNothingIsRevoked() throws {
        let harness = try BrokerHarness()
        var done = false
        harness.service.shutdown { done = true }
        #expect(runLoop(harness.loop) { done })
        #expect(harness.vault.requests(to: "revoke-self").isEmpty)
    }

    @Test func aFailedRevokeIsLoggedAndShutdownStillCompletes() throws {
        let harness = try BrokerHarness()
        #expect(harness.startAndWaitHealthy())
        harness.vault.script = { $0.path.hasSuffix("revoke-self") ? .json(status: 503, #"{"errors":[]}"#) : nil }
        var done = false
        harness.service.shutdown { done = true }
        #expect(runLoop(harness.loop) { done })
        let failed = harness.logs.events(named: "broker.token.revoke_failed")
        #expect(failed.count == 1)
        #expect(failed.first?.fields["status"] == "503")
    }
}
