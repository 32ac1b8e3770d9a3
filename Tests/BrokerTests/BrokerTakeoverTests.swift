import KMSCore
import KMSRuntime
import Testing

@testable import Broker
@testable import VaultClient

/// `--accept-foreign-key-ids`: Decrypt of data another plugin wrote (its key_id is not of our
/// scheme). Off by default; on, only `vault:vN:` of a known version, and our own key_id check
/// stays as strict as without the mode.
@Suite(.serialized)
struct BrokerTakeoverTests {
    private func ready(_ harness: BrokerHarness) -> Bool { harness.startAndWaitHealthy() && harness.hello() }

    private func sealed(_ harness: BrokerHarness, id: UInt32) throws -> EncryptAnswer? {
        harness.send(
            .encryptRequest, id: id,
            payload: EncryptRequest(deadlineMillis: 3000, uid: "uid-\(id)", plaintext: Array(repeating: 7, count: 32))
                .payload())
        return try harness.waitForAnswer(id: id).flatMap { try $0.answer().encrypt }
    }

    private func decrypt(_ harness: BrokerHarness, id: UInt32, keyID: String, ciphertext: [UInt8]) throws
        -> DecryptAnswer?
    {
        harness.send(
            .decryptRequest, id: id,
            payload: DecryptRequest(deadlineMillis: 3000, uid: "uid-\(id)", keyID: keyID, ciphertext: ciphertext)
                .payload())
        return try harness.waitForAnswer(id: id).flatMap { try $0.answer().decrypt }
    }

    @Test func withoutTheModeAForeignKeyIDIsRefusedWithoutAVaultCallAndCounted() throws {
        let harness = try BrokerHarness()
        #expect(ready(harness))
        let ciphertext = try #require(try sealed(harness, id: 2)).ciphertext
        let before = harness.vault.recorded.count
        #expect(try decrypt(harness, id: 3, keyID: "1", ciphertext: ciphertext)?.code == .unknownKeyID)
        #expect(harness.vault.recorded.count == before)
        #expect(harness.service.foreignKeyIDRefused == 1)
        #expect(harness.service.foreignKeyIDDecrypts == 0)
        #expect(harness.service.metricsSnapshot().values[.foreignKeyIDRefused] == 1)
    }

    @Test func withTheModeAForeignKeyIDOfAKnownVersionDecryptsAndIsCountedAndLoggedOnce() throws {
        let harness = try BrokerHarness(acceptForeignKeyIDs: true)
        #expect(ready(harness))
        let answer = try #require(try sealed(harness, id: 2))
        for id in UInt32(3)...5 {
            let opened = try #require(try decrypt(harness, id: id, keyID: "1", ciphertext: answer.ciphertext))
            #expect(opened.code == .ok)
            #expect(opened.plaintext == Array(repeating: 7, count: 32))
        }
        #expect(harness.service.foreignKeyIDDecrypts == 3)
        #expect(harness.service.metricsSnapshot().values[.foreignKeyIDDecrypts] == 3)
        #expect(harness.logs.events(named: "broker.decrypt.foreign_key_id").count == 1)
        // Our own key_id still works, and is not counted as foreign.
        #expect(try decrypt(harness, id: 6, keyID: answer.keyID, ciphertext: answer.ciphertext)?.code == .ok)
        #expect(harness.service.foreignKeyIDDecrypts == 3)
    }

    @Test func withTheModeAKeyIDOfOurSchemeThatDoesNotMatchIsStillRefused() throws {
        let harness = try BrokerHarness(acceptForeignKeyIDs: true)
        #expect(ready(harness))
        let ciphertext = try #require(try sealed(harness, id: 2)).ciphertext
        let before = harness.vault.recorded.count
        let forged = "transit-v1-" + String(repeating: "0", count: 32)
        #expect(try decrypt(harness, id: 3, keyID: forged, ciphertext: ciphertext)?.code == .unknownKeyID)
        #expect(harness.vault.recorded.count == before)
        #expect(harness.service.foreignKeyIDDecrypts == 0)
    }

    @Test func withTheModeAVersionTheKeyDoesNotHaveIsRefusedAfterOneMetadataRead() throws {
        let harness = try BrokerHarness(acceptForeignKeyIDs: true)
        #expect(ready(harness))
        let reads = harness.vault.requests(to: "/keys/kek").count
        let answer = try decrypt(harness, id: 3, keyID: "9", ciphertext: Array("vault:v9:AAAA".utf8))
        #expect(answer?.code == .unknownKeyID)
        #expect(harness.vault.requests(to: "/keys/kek").count == reads + 1)
        #expect(harness.vault.requests(to: "/decrypt/kek").isEmpty)
        #expect(harness.service.foreignKeyIDRefused == 1)
        #expect(
            try decrypt(harness, id: 4, keyID: "1", ciphertext: Array("vault:1:AAAA".utf8))?.code == .invalidRequest)
    }
}
