import KMSCore
import KMSRuntime
import KMSTestSupport
import Testing

@testable import Broker
@testable import VaultClient

/// What `BrokerService.statistics` exports, the deep probe and the edition detection.
struct BrokerStatisticsTests {
    @Test func statisticsCountLoginsKeyReadsAndTheActiveVersion() throws {
        let harness = try BrokerHarness()
        #expect(harness.startAndWaitHealthy())
        let stats = harness.service.statistics
        #expect(stats.healthReason == "ok")
        #expect(stats.tokens.loginSuccesses == 1)
        #expect(stats.vaultOperations[.login]?.count == 1)
        #expect(stats.vaultOperations[.readKey]?.count ?? 0 >= 1)
        #expect(stats.activeKeyVersion == 1)
        #expect(stats.tlsSkipVerify == false)
        #expect((stats.tokenSecondsToExpiry ?? 0) > 3500)
        let readKey = stats.vaultOperations[.readKey]!
        #expect(readKey.buckets.reduce(0, +) == readKey.count)
    }

    @Test func failedVaultCallsAreCountedByErrorClass() throws {
        let harness = try BrokerHarness {
            $0.script = { request in
                request.path.contains("/keys/") ? .json(status: 403, #"{"errors":["permission denied"]}"#) : nil
            }
        }
        harness.service.start()
        #expect(runLoop(harness.loop) { harness.service.healthReason.hasPrefix("permission denied") })
        #expect(harness.service.statistics.vaultOperations[.readKey]?.errors["permission-denied"] == 1)
    }

    @Test func callsAreCountedUnderTheOperationTheirBuilderNamedNotByTheirPath() throws {
        let loop = try EventLoop()
        let vault = FakeVault(loop: loop)
        vault.script = { _ in .json(status: 200, "{}") }
        let instrumented = InstrumentedTransport(vault)
        var done = 0
        // A path that reads like an encrypt but was built as something else is counted as that.
        instrumented.send(
            VaultRequest(method: .post, path: "transit/encrypt/kek", operation: .other, timeoutMillis: 1000)
        ) {
            _ in done += 1
        }
        instrumented.send(VaultRequest(method: .post, path: "x/y", operation: .decrypt, timeoutMillis: 1000)) { _ in
            done += 1
        }
        #expect(runLoop(loop) { done == 2 })
        #expect(instrumented.operations[.other]?.count == 1)
        #expect(instrumented.operations[.decrypt]?.count == 1)
        #expect(instrumented.operations[.encrypt] == nil)
    }

    @Test func theKeyProbeWordsItsHealthByTheTypedCause() throws {
        let tls = try #require(VaultErrorClassifier.classify(.failed(.tls)))
        #expect(KeyProbe.reason(for: tls, path: "transit/keys/kek") == "vault TLS handshake failed")
        let standby = VaultErrorClassifier.classify(status: 307, errors: [])
        #expect(KeyProbe.reason(for: standby, path: "transit/keys/kek") == VaultErrorClassifier.standbyReason)
        // Only the cause counts: the same reason text from another cause is just "unreachable".
        let lookalike = VaultCallError(code: .unavailable, status: 0, reason: "TLS failure", cause: .notSent)
        #expect(KeyProbe.reason(for: lookalike, path: "transit/keys/kek") == "vault unreachable")
    }

    @Test func theDeepProbeRoundTripsThroughVaultAndCountsSuccess() throws {
        let harness = try BrokerHarness()
        #expect(harness.startAndWaitHealthy())
        var done = false
        harness.service.deepProbe.probe { done = true }
        #expect(runLoop(harness.loop) { done })
        #expect(harness.service.statistics.deepProbeSuccesses == 1)
        #expect(harness.vault.requests(to: "/encrypt/kek").count == 1)
        #expect(harness.vault.requests(to: "/decrypt/kek").count == 1)
    }

    @Test func aFailingDeepProbeMakesTheBrokerUnhealthyNamingThePath() throws {
        let harness = try BrokerHarness()
        #expect(harness.startAndWaitHealthy())
        harness.vault.script = { request in
            request.path.contains("/decrypt/") ? .json(status: 403, #"{"errors":["permission denied"]}"#) : nil
        }
        var done = false
        harness.service.deepProbe.probe { done = true }
        #expect(runLoop(harness.loop) { done })
        #expect(harness.service.healthReason == "permission denied on transit/decrypt/kek")
        #expect(harness.service.statistics.deepProbeFailures == 1)
    }

    @Test(arguments: [
        (200, #"{"data":{"autoloaded":{}}}"#, "enterprise"),
        (404, #"{"errors":["enterprise-only feature"]}"#, "community"),
        (404, #"{"errors":["1 error occurred:\n\t* unsupported path\n\n"]}"#, "openbao"),
        (403, #"{"errors":["permission denied"]}"#, "unknown"),
    ])
    func theEditionIsReadFromLicenseStatusAndNeverRefusedByDefault(status: Int, body: String, edition: String) throws {
        let harness = try BrokerHarness {
            $0.script = { request in request.path == "sys/license/status" ? .json(status: status, body) : nil }
        }
        #expect(harness.startAndWaitHealthy())
        #expect(runLoop(harness.loop) { harness.service.statistics.vaultEdition == edition })
        #expect(harness.service.healthReason == "ok")
        #expect(harness.logs.events(named: "broker.vault.edition").first?.fields["edition"] == edition)
    }
}

/// A rollback seen by the probe stops Encrypt: the active version may now be another key.
struct RollbackEncryptTests {
    @Test func encryptIsRefusedOnceTheKeyWasSeenRolledBack() throws {
        let harness = try BrokerHarness()
        #expect(harness.startAndWaitHealthy())
        harness.vault.creationTimes = [1: 1_800_000_000]
        var done = false
        harness.service.keyProbe.probe { done = true }
        #expect(runLoop(harness.loop) { done })
        #expect(harness.service.healthReason.hasPrefix("key rolled back"))
        #expect(harness.service.statistics.keyRolledBack)
        #expect(harness.hello())
        let before = harness.vault.transitCalls.count
        harness.send(
            .encryptRequest, id: 2, payload: EncryptRequest(deadlineMillis: 3000, uid: "u", plaintext: [1]).payload())
        #expect(try harness.waitForAnswer(id: 2).flatMap { try $0.answer().encrypt?.code } == .notReady)
        #expect(harness.vault.transitCalls.count == before)
    }
}
