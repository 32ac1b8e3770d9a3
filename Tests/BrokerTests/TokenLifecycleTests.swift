import KMSCore
import KMSRuntime
import KMSTestSupport
import Testing

@testable import Broker
@testable import VaultClient

struct TokenLifecycleTests {
    @Test func aShortTokenIsRenewedAcrossSeveralTTLsWithoutLoggingInAgain() throws {
        let harness = try BrokerHarness { $0.leaseSeconds = 1 }
        #expect(harness.startAndWaitHealthy())
        // Renewal at 2/3 of the 1 s lease, again and again: still one login.
        #expect(runLoop(harness.loop, timeoutMillis: 5000) { harness.vault.requests(to: "renew-self").count >= 4 })
        #expect(harness.vault.requests(to: "/login").count == 1)
        #expect(harness.vault.requests(to: "renew-self").allSatisfy { $0.hadToken })
        #expect(harness.service.tokens.counters.renewalSuccesses >= 3)
    }

    @Test func aRenewalCappedByTheMaxTTLLeadsToAFreshLoginBeforeItEnds() throws {
        let harness = try BrokerHarness {
            $0.leaseSeconds = 3
            $0.renewLeaseSeconds = 1
        }
        #expect(harness.startAndWaitHealthy())
        // login (3 s) -> renew at 2 s grants only 1 s (max TTL near) -> login at 2/3 of it.
        #expect(runLoop(harness.loop, timeoutMillis: 6000) { harness.vault.requests(to: "/login").count >= 2 })
        let paths = harness.vault.recorded.map(\.path).filter { $0.hasPrefix("auth/") }
        #expect(Array(paths.prefix(3)) == ["auth/approle/login", "auth/token/renew-self", "auth/approle/login"])
        #expect(harness.service.healthReason == "ok")
        #expect(!harness.logs.events(named: "broker.token.max_ttl_near").isEmpty)
    }

    @Test func aRefusedLoginBacksOffAndCountsTowardTheLockoutBudget() throws {
        let harness = try BrokerHarness { $0.loginFailureStatus = 400 }
        harness.service.start()
        #expect(
            runLoop(harness.loop) { harness.service.healthReason.hasPrefix(TokenLifecycle.waitingForSecretIDReason) })
        // The next attempt of a credential failure waits at least 24 s (30 s - 20 % jitter).
        let retry = harness.logs.events(named: "broker.login.retry").first
        #expect(retry?.fields["kind"] == "credentials")
        #expect((Int(retry?.fields["after_millis"] ?? "") ?? 0) >= 24_000)
        #expect(harness.vault.requests(to: "/login").count == 1)
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
        #expect(try harness.waitForAnswer(id: 2).flatMap { try $0.answer().encrypt?.code } == .ok)
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
        let reasons = harness.logs.events(named: "broker.login.secret_id_refused").compactMap { $0.fields["reason"] }
        #expect(reasons.first?.contains("chmod 0400") == true)
    }
}

/// The health reason when the token ran out while renewal and logins failed.
struct TokenExpiryHealthTests {
    @Test func aTokenThatRunsOutWhileLoginsFailIsReportedAsTokenExpired() throws {
        var logins = 0
        let harness = try BrokerHarness {
            $0.leaseSeconds = 1
            $0.script = { request in
                if request.path.hasSuffix("renew-self") { return .json(status: 500, #"{"errors":["internal error"]}"#) }
                guard request.path.hasSuffix("/login") else { return nil }
                logins += 1
                // Vault fails without judging the credentials (a refusal has its own reason).
                return logins == 1 ? nil : .json(status: 500, #"{"errors":["internal error"]}"#)
            }
        }
        #expect(harness.startAndWaitHealthy())
        #expect(runLoop(harness.loop, timeoutMillis: 4000) { harness.service.healthReason == "token expired" })
        #expect(harness.service.statistics.tokens.renewalFailures >= 1)
        #expect((harness.service.statistics.tokenSecondsToExpiry ?? 0) == 0)
    }
}

/// Issue 13 finding 7: a huge `lease_duration` must not trap the millisecond arithmetic.
struct HugeLeaseTests {
    @Test func aLeaseOfInt64MaxSecondsIsClampedAndServed() throws {
        let harness = try BrokerHarness { $0.leaseSeconds = Int.max }
        #expect(harness.startAndWaitHealthy())
        let left = try #require(harness.service.tokens.secondsToExpiry)
        #expect(left > VaultToken.maxLeaseSeconds - 10 && left <= VaultToken.maxLeaseSeconds)
    }
}
