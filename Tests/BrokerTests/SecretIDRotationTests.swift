import KMSCore
import KMSRuntime
import KMSTestSupport
import Testing

@testable import Broker
@testable import VaultClient

/// Issue 13 finding 1: a secret ID Vault refuses is retried on the designed back-off (never in a
/// burst, never faster while a token is still held), and a changed secret-ID file is tried at
/// once, inside the back-off. FakeVault models `secret_id_num_uses=1`: each secret ID logs in
/// once, then is refused with 400 like Vault's "invalid secret id".
struct SecretIDRotationTests {
    /// A harness whose logins consume their secret ID; lease 3 s, renewals granting 1 s (the max
    /// TTL is near), so a second login comes about 2.7 s after the first.
    static func useOnceHarness() throws -> (BrokerHarness, () -> Int) {
        var used: Set<String> = []
        var refusals = 0
        let harness = try BrokerHarness {
            $0.leaseSeconds = 3
            $0.renewLeaseSeconds = 1
            $0.script = { request in
                guard request.path.hasSuffix("/login") else { return nil }
                let secret = Self.secretID(in: request.body)
                if used.contains(secret) {
                    refusals += 1
                    return .json(status: 400, #"{"errors":["invalid secret id"]}"#)
                }
                used.insert(secret)
                return nil
            }
        }
        return (harness, { refusals })
    }

    static func secretID(in body: String) -> String {
        let parts = body.split(separator: "\"", omittingEmptySubsequences: false)
        guard let index = parts.firstIndex(of: "secret_id"), index + 2 < parts.count else { return "" }
        return String(parts[index + 2])
    }

    static func retryDelays(_ harness: BrokerHarness) -> [Int] {
        harness.logs.events(named: "broker.login.retry").compactMap { Int($0.fields["after_millis"] ?? "") }
    }

    @Test func aConsumedSecretIDIsRetriedOnTheBackoffNotInABurstWhileTheTokenIsHeld() throws {
        let (harness, refusals) = try Self.useOnceHarness()
        #expect(harness.startAndWaitHealthy())
        // The re-login at ~2.7 s is refused; the token in use still has ~0.3 s left. Before the
        // fix the retry came after half of that, then half again: four refusals in 300 ms.
        #expect(runLoop(harness.loop, timeoutMillis: 6000) { refusals() >= 1 })
        runLoop(harness.loop, forMillis: 2500)
        #expect(refusals() == 1)
        let delays = Self.retryDelays(harness)
        #expect(delays.count == 1 && delays.allSatisfy { $0 >= 24_000 }, "retry delays \(delays)")
        // The token ran out meanwhile: health says what is happening and when the next try is.
        let reason = harness.service.healthReason
        #expect(reason.hasPrefix(TokenLifecycle.waitingForSecretIDReason + " (next attempt 20"), "\(reason)")
        let waiting = harness.logs.events(named: "broker.login.waiting_for_secret_id")
        #expect(waiting.count == 1 && waiting.first?.fields["next_attempt"]?.hasSuffix("Z") == true)
    }

    @Test func aNewSecretIDFileIsTriedAtOnceInsideTheBackoffAndRecovers() throws {
        let (harness, refusals) = try Self.useOnceHarness()
        #expect(harness.startAndWaitHealthy())
        #expect(runLoop(harness.loop, timeoutMillis: 6000) { refusals() >= 1 })
        runLoop(harness.loop, forMillis: 1000)
        #expect(harness.service.healthReason.hasPrefix(TokenLifecycle.waitingForSecretIDReason))
        let written = EventLoop.nowMillis()
        harness.directory.write("secret-id", "9a8b7c6d-0000-4e5f-8a6b-7c8d9e0f1a2b\n")
        // Noticed at the second look (0.5-1 s), logged in, key read again: healthy in ~1 s,
        // where the 30 s back-off (and before the fix, a 15.5 min lockout wait) would stand.
        #expect(runLoop(harness.loop, timeoutMillis: 3000) { harness.service.healthReason == "ok" })
        #expect(EventLoop.nowMillis() - written < 2000)
        #expect(refusals() == 1)
        #expect(harness.logs.events(named: "broker.login.secret_id_changed").first?.fields["action"] == "login now")
        #expect(harness.vault.requests(to: "/login").last?.body.contains("9a8b7c6d-0000") == true)
    }

    @Test func aFileRewrittenWithTheRefusedSecretIDIsNotRetriedBeforeTheBackoff() throws {
        let (harness, refusals) = try Self.useOnceHarness()
        #expect(harness.startAndWaitHealthy())
        #expect(runLoop(harness.loop, timeoutMillis: 6000) { refusals() >= 1 })
        let logins = harness.vault.requests(to: "/login").count
        // Same content, new mtime and ctime (a config tool re-rendering the file).
        harness.directory.write("secret-id", BrokerHarness.secretID + "\n")
        runLoop(harness.loop, forMillis: 1800)
        #expect(harness.vault.requests(to: "/login").count == logins)
        #expect(!harness.logs.events(named: "broker.login.secret_id_unchanged").isEmpty)
        #expect(harness.logs.events(named: "broker.login.secret_id_changed").isEmpty)
    }

    @Test func aSecretIDFileWithBadPermissionsThatIsFixedIsTriedAtOnce() throws {
        let harness = try BrokerHarness()
        harness.directory.write("secret-id", BrokerHarness.secretID + "\n", mode: 0o644)
        harness.service.start()
        #expect(runLoop(harness.loop) { harness.service.healthReason == "login failed" })
        #expect(harness.vault.requests(to: "/login").isEmpty)
        harness.directory.write("secret-id", BrokerHarness.secretID + "\n", mode: 0o400)
        #expect(runLoop(harness.loop, timeoutMillis: 2500) { harness.service.healthReason == "ok" })
    }
}
