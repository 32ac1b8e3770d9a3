import KMSCore
import KMSRuntime
import Testing

@testable import Broker

struct TokenLifecycleTests {
    @Test func aRenewalThatAnswersAShortTTLLeadsToAFreshLogin() throws {
        let harness = try BrokerHarness { $0.leaseSeconds = 1 }
        #expect(harness.startAndWaitHealthy())
        // Renewal at 2/3 of the 1 s lease; a renewed TTL under 30 s is not worth keeping.
        #expect(runLoop(harness.loop, timeoutMillis: 4000) { harness.vault.requests(to: "/login").count >= 2 })
        let paths = harness.vault.recorded.map(\.path).filter { $0.hasPrefix("auth/") }
        #expect(Array(paths.prefix(3)) == ["auth/approle/login", "auth/token/renew-self", "auth/approle/login"])
        #expect(harness.vault.requests(to: "renew-self").first?.hadToken == true)
    }

    @Test func aLongLeaseIsRenewedNotReplaced() throws {
        let harness = try BrokerHarness { $0.leaseSeconds = 45 }
        #expect(harness.startAndWaitHealthy())
        #expect(harness.vault.requests(to: "/login").first?.hadToken == false)
        #expect(harness.service.tokens.state == .loggedIn)
        #expect(harness.vault.requests(to: "renew-self").isEmpty)
    }

    @Test func theSecretIDFileIsReadAgainAtEveryLogin() throws {
        let harness = try BrokerHarness()
        #expect(harness.startAndWaitHealthy())
        #expect(harness.vault.requests(to: "/login").first?.body.contains(BrokerHarness.secretID) == true)
        harness.directory.write("secret-id", "rotated-secret-id-0001\n")
        harness.vault.validTokens.removeAll()
        #expect(harness.hello())
        harness.send(
            .encryptRequest, id: 2, payload: EncryptRequest(deadlineMillis: 3000, uid: "u", plaintext: [1]).payload())
        #expect(try harness.waitForAnswer(id: 2).map { try EncryptAnswer.decode($0.payload).code } == .ok)
        let logins = harness.vault.requests(to: "/login")
        #expect(logins.count == 2)
        #expect(logins.last?.body.contains("rotated-secret-id-0001") == true)
    }

    @Test func aSecretIDFileMadeUnreadableAfterStartupFailsLoginWithoutLeakingIt() throws {
        let harness = try BrokerHarness()
        harness.directory.write("secret-id", "x", mode: 0o644)
        harness.service.start()
        #expect(runLoop(harness.loop) { harness.service.healthReason == "login failed" })
        #expect(harness.vault.requests(to: "/login").isEmpty)
        let reasons = harness.logs.events(named: "broker.login.failed").compactMap { $0.fields["reason"] }
        #expect(reasons.first?.contains("chmod 0400") == true)
    }
}
