import KMSCore
import KMSRuntime
import Testing

@testable import Broker
@testable import VaultClient

/// The METRICS answer over a real seqpacket pair: what the broker tracks reaches the front.
@Suite(.serialized)
struct BrokerMetricsSnapshotTests {
    private func metrics(_ harness: BrokerHarness, id: UInt32) throws -> MetricsAnswer {
        harness.send(.metricsRequest, id: id)
        let frame = try #require(harness.waitForAnswer(id: id))
        #expect(frame.type == .metricsAnswer)
        return try #require(try frame.answer().metrics)
    }

    @Test func metricsAfterLoginReportTokenKeyAndVaultCallCounts() throws {
        let harness = try BrokerHarness()
        #expect(harness.startAndWaitHealthy() && harness.hello())
        let answer = try metrics(harness, id: 2)
        #expect(answer.code == .ok)
        #expect(answer.opensslVersion.hasPrefix("OpenSSL"))
        #expect(answer.values[.tokenValid] == 1)
        #expect((answer.values[.tokenSecondsToExpiry] ?? 0) > 0)
        #expect(answer.values[.vaultLoginTotal] == 1)
        #expect(answer.values[.vaultLoginErrors] == 0)
        #expect(answer.values[.loginSuccesses] == 1)
        #expect(answer.values[.loginFailures] == 0)
        #expect((answer.values[.vaultReadKeyTotal] ?? 0) >= 1)
        #expect(answer.values[.brokerHealthy] == 1)
        #expect(answer.values[.keyState] == 1)
        let version = try #require(answer.values[.activeKeyVersion])
        #expect(version >= 1)
        let keyID = try #require(harness.keyID(version: UInt32(version)))
        #expect(answer.values[.activeKeyIDHash] == BrokerService.fnv1a64(keyID))
        #expect((answer.values[.processResidentBytes] ?? 0) > 0)
        #expect((answer.values[.processOpenFDs] ?? 0) > 0)
        #expect(answer.values[.frontConnections] == 1)
    }

    @Test func aFailedEncryptCountsAsAVaultEncryptError() throws {
        let harness = try BrokerHarness()
        #expect(harness.startAndWaitHealthy() && harness.hello())
        harness.vault.script = { $0.path.contains("/encrypt/") ? .transport(.connectFailed) : nil }
        harness.send(
            .encryptRequest, id: 3, payload: EncryptRequest(deadlineMillis: 3000, uid: "u", plaintext: [1]).payload())
        _ = try #require(harness.waitForAnswer(id: 3))
        let answer = try metrics(harness, id: 4)
        #expect((answer.values[.vaultEncryptTotal] ?? 0) >= 1)
        #expect(answer.values[.vaultEncryptErrors] == answer.values[.vaultEncryptTotal])
        #expect(answer.values[.vaultDecryptTotal] == 0)
    }
}
