import KMSCore
import KMSRuntime
import KMSTestSupport
import Testing

@testable import Broker
@testable import VaultClient

/// The meaning checks and Vault interplay behind HELLO, STATUS, ENCRYPT and DECRYPT.
@Suite(.serialized)
struct BrokerRequestTests {
    private func ready(_ harness: BrokerHarness) -> Bool { harness.startAndWaitHealthy() && harness.hello() }

    private func encrypt(_ harness: BrokerHarness, id: UInt32, plaintext: [UInt8] = Array(repeating: 9, count: 32))
        throws -> EncryptAnswer?
    {
        harness.send(
            .encryptRequest, id: id,
            payload: EncryptRequest(deadlineMillis: 3000, uid: "uid-\(id)", plaintext: plaintext).payload())
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

    @Test func helloAnswerEchoesTheRequestIDAndAnnouncesTheInFlightLimit() throws {
        let harness = try BrokerHarness()
        harness.send(.helloRequest, id: 41, payload: HelloRequest(frontVersion: "f").payload())
        let frame = try #require(harness.waitForAnswer(id: 41))
        #expect(frame.type == .helloAnswer)
        let answer = try #require(try frame.answer().hello)
        #expect(answer.code == .ok)
        #expect(answer.maxInFlight == UInt32(Limits.maxInFlightPerFront))
        #expect(harness.helloCount == 1)
    }

    @Test func statusBeforeLoginSaysNotLoggedInYet() throws {
        let harness = try BrokerHarness()
        #expect(harness.hello())
        harness.send(.statusRequest, id: 2)
        let frame = try #require(harness.waitForAnswer(id: 2))
        let answer = try #require(try frame.answer().status)
        #expect(answer.healthz == "not logged in yet")
        #expect(answer.keyID.isEmpty)
    }

    @Test func statusIsAnsweredFromTheCacheWithZeroVaultCalls() throws {
        let harness = try BrokerHarness()
        #expect(ready(harness))
        let before = harness.vault.recorded.count
        for id in UInt32(2)...UInt32(6) { harness.send(.statusRequest, id: id) }
        let frame = try #require(harness.waitForAnswer(id: 6))
        let answer = try #require(try frame.answer().status)
        #expect(frame.type == .statusAnswer)
        #expect(answer.healthz == "ok")
        #expect(answer.keyID == harness.keyID(version: 1))
        #expect(KeyID(parsing: answer.keyID)?.version == 1)
        #expect(harness.vault.recorded.count == before)
    }

    @Test func encryptNamesTheActiveVersionAndAnswersTheStatusKeyID() throws {
        let harness = try BrokerHarness {
            $0.latestVersion = 2; $0.creationTimes = [1: 1_700_000_000, 2: 1_700_100_000]
        }
        #expect(ready(harness))
        let answer = try #require(try encrypt(harness, id: 3))
        #expect(answer.code == .ok)
        #expect(answer.keyID == harness.keyID(version: 2))
        #expect(String(decoding: answer.ciphertext, as: UTF8.self).hasPrefix("vault:v2:"))
        let call = try #require(harness.vault.requests(to: "/encrypt/kek").first)
        #expect(call.path == "transit/encrypt/kek")
        #expect(call.body.contains(#""key_version":2"#))
        #expect(call.correlationID == "uid-3")
        #expect(call.timeoutMillis <= 3000)
    }

    @Test func encryptAnsweredFromAnotherVersionIsRefused() throws {
        let harness = try BrokerHarness()
        #expect(ready(harness))
        harness.vault.script = { request in
            request.path.contains("/encrypt/")
                ? .json(status: 200, #"{"data":{"ciphertext":"vault:v2:AAAA","key_version":2}}"#) : nil
        }
        #expect(try encrypt(harness, id: 3)?.code == .internalError)
    }

    @Test func encryptBeforeTheKeyIsReadAnswersNotReady() throws {
        let harness = try BrokerHarness()
        #expect(harness.hello())
        #expect(try encrypt(harness, id: 2)?.code == .notReady)
        #expect(harness.vault.transitCalls.isEmpty)
    }

    @Test func encryptThenDecryptRoundTrips() throws {
        let harness = try BrokerHarness()
        #expect(ready(harness))
        let plaintext = (0..<32).map { UInt8($0) }
        let sealed = try #require(try encrypt(harness, id: 3, plaintext: plaintext))
        let opened = try #require(try decrypt(harness, id: 4, keyID: sealed.keyID, ciphertext: sealed.ciphertext))
        #expect(opened.code == .ok)
        #expect(opened.plaintext == plaintext)
    }

    /// Issue 13 finding 7: refused Decrypts (anyone on the KMS socket can send them) are logged
    /// once per 10 s, with the number left out.
    @Test func refusedDecryptsAreLoggedRateLimited() throws {
        let harness = try BrokerHarness()
        #expect(ready(harness))
        let forged = "transit-v1-" + String(repeating: "0", count: 32)
        for id in UInt32(20)..<25 {
            #expect(
                try decrypt(harness, id: id, keyID: forged, ciphertext: Array("vault:v1:AAAA".utf8))?.code
                    == .unknownKeyID)
        }
        let lines = harness.logs.events(named: "broker.decrypt.refused")
        #expect(lines.count == 1)
        #expect(lines.first?.fields["suppressed"] == "0")
    }

    @Test func decryptWithAnUnknownKeyIDIsRejectedWithoutAVaultCall() throws {
        let harness = try BrokerHarness()
        #expect(ready(harness))
        let before = harness.vault.recorded.count
        let forged = "transit-v1-" + String(repeating: "0", count: 32)
        let answer = try decrypt(harness, id: 5, keyID: forged, ciphertext: Array("vault:v1:AAAA".utf8))
        #expect(answer?.code == .unknownKeyID)
        #expect(harness.vault.recorded.count == before)
    }

    @Test func decryptWhoseKeyIDNamesAnotherVersionIsRejectedWithoutAVaultCall() throws {
        let harness = try BrokerHarness {
            $0.latestVersion = 2; $0.creationTimes = [1: 1_700_000_000, 2: 1_700_100_000]
        }
        #expect(ready(harness))
        let before = harness.vault.recorded.count
        let answer = try decrypt(
            harness, id: 5, keyID: try #require(harness.keyID(version: 2)), ciphertext: Array("vault:v1:AAAA".utf8))
        #expect(answer?.code == .unknownKeyID)
        #expect(harness.vault.recorded.count == before)
    }

    @Test func decryptOfMalformedCiphertextIsInvalidWithoutAVaultCall() throws {
        let harness = try BrokerHarness()
        #expect(ready(harness))
        let before = harness.vault.recorded.count
        let keyID = try #require(harness.keyID(version: 1))
        #expect(
            try decrypt(harness, id: 5, keyID: keyID, ciphertext: Array("vault:v1:not base64!".utf8))?.code
                == .invalidRequest)
        #expect(
            try decrypt(harness, id: 6, keyID: keyID, ciphertext: Array("k8s:v1:AAAA".utf8))?.code == .invalidRequest)
        #expect(harness.vault.recorded.count == before)
    }

    @Test func decryptOfANewerVersionRefreshesTheMetadataOnceAndIsRateLimited() throws {
        let harness = try BrokerHarness()
        #expect(ready(harness))
        // Vault rotated; another apiserver already encrypted under v2.
        harness.vault.latestVersion = 2
        harness.vault.creationTimes[2] = 1_700_200_000
        let v2 = KeyIDDerivation.keyID(
            for: KeyScope(namespace: "", mount: "transit", keyName: "kek", version: 2, creationTime: 1_700_200_000))
        let reads = harness.vault.requests(to: "/keys/kek").count
        let answer = try decrypt(
            harness, id: 7, keyID: v2.description, ciphertext: Array("vault:v2:\("ct:abc".utf8.base64)".utf8))
        #expect(answer?.code == .ok)
        #expect(harness.vault.requests(to: "/keys/kek").count == reads + 1)

        // A forged v3 right after: no second refresh inside the interval.
        let v3 = "transit-v3-" + String(repeating: "a", count: 32)
        #expect(try decrypt(harness, id: 8, keyID: v3, ciphertext: Array("vault:v3:AAAA".utf8))?.code == .unknownKeyID)
        #expect(harness.vault.requests(to: "/keys/kek").count == reads + 1)
        #expect(harness.vault.requests(to: "/decrypt/kek").count == 1)
    }

    @Test func anInvalidTokenLeadsToOneNewLoginAndARetry() throws {
        let harness = try BrokerHarness()
        #expect(ready(harness))
        harness.vault.validTokens.removeAll()  // the token was revoked
        let answer = try encrypt(harness, id: 3)
        #expect(answer?.code == .ok)
        #expect(harness.vault.requests(to: "/login").count == 2)
        #expect(harness.vault.requests(to: "/encrypt/kek").count == 2)
    }

    @Test("OpenBao's bare 403 for a revoked token: lookup-self confirms it dead, one login, the call retried")
    func aBare403ForADeadTokenIsCheckedThenLeadsToOneLogin() throws {
        let harness = try BrokerHarness { $0.bareDeniedForDeadTokens = true }
        #expect(ready(harness))
        harness.vault.validTokens.removeAll()  // revoked under the broker
        #expect(try encrypt(harness, id: 3)?.code == .ok)
        #expect(harness.vault.requests(to: "/lookup-self").count == 1)
        #expect(harness.vault.requests(to: "/login").count == 2)
        #expect(harness.vault.requests(to: "/encrypt/kek").count == 2)
    }

    @Test("a bare 403 with a live token is a policy denial: no login, permission-denied answered")
    func aBare403WithALiveTokenIsAPolicyDenial() throws {
        let harness = try BrokerHarness { $0.bareDeniedForDeadTokens = true }
        #expect(ready(harness))
        harness.vault.script = { request in
            request.path.contains("/encrypt/") ? .json(status: 403, #"{"errors":["permission denied"]}"#) : nil
        }
        #expect(try encrypt(harness, id: 3)?.code == .permissionDenied)
        #expect(harness.vault.requests(to: "/lookup-self").count == 1)
        #expect(harness.vault.requests(to: "/login").count == 1)
        #expect(harness.vault.requests(to: "/encrypt/kek").count == 1)
    }

    @Test func aTransient5xxIsRetriedOnceWithinTheDeadline() throws {
        let harness = try BrokerHarness()
        #expect(ready(harness))
        var failures = 0
        harness.vault.script = { request in
            guard request.path.contains("/encrypt/"), failures == 0 else { return nil }
            failures += 1
            return .json(status: 502, "bad gateway")
        }
        #expect(try encrypt(harness, id: 3)?.code == .ok)
        #expect(harness.vault.requests(to: "/encrypt/kek").count == 2)
    }

    @Test func aSealedVaultAnswersSealedWithoutRetry() throws {
        let harness = try BrokerHarness()
        #expect(ready(harness))
        harness.vault.script = {
            $0.path.contains("/encrypt/") ? .json(status: 503, #"{"errors":["Vault is sealed"]}"#) : nil
        }
        #expect(try encrypt(harness, id: 3)?.code == .sealed)
        #expect(harness.vault.requests(to: "/encrypt/kek").count == 1)
    }

    @Test func aTimedOutVaultCallAnswersDeadlineExceeded() throws {
        let harness = try BrokerHarness()
        #expect(ready(harness))
        harness.vault.script = { $0.path.contains("/encrypt/") ? .transport(.timedOut) : nil }
        #expect(try encrypt(harness, id: 3)?.code == .deadlineExceeded)
    }

    @Test func aWrongKeyTypeIsReportedInHealthAndEncryptIsRefused() throws {
        let harness = try BrokerHarness { $0.keyType = "rsa-2048" }
        harness.service.start()
        #expect(
            runLoop(harness.loop) {
                harness.service.healthReason != "not logged in yet"
                    && harness.service.healthReason != "key metadata not read yet"
            })
        #expect(harness.service.healthReason == "key type rsa-2048 is not aes256-gcm96")
        #expect(harness.hello())
        #expect(try encrypt(harness, id: 2)?.code == .notReady)
    }

    @Test func aMissingKeyIsReportedInHealth() throws {
        let harness = try BrokerHarness { vault in
            vault.script = { $0.path.hasSuffix("/keys/kek") ? .json(status: 404, #"{"errors":[]}"#) : nil }
        }
        harness.service.start()
        #expect(runLoop(harness.loop) { harness.service.healthReason == "key missing: transit/keys/kek" })
    }

    @Test func aPolicyDenialOnTheKeyIsReportedWithThePath() throws {
        let harness = try BrokerHarness { vault in
            vault.script = {
                $0.path.hasSuffix("/keys/kek")
                    ? .json(status: 403, #"{"errors":["1 error occurred:\n\t* permission denied\n\n"]}"#) : nil
            }
        }
        harness.service.start()
        #expect(runLoop(harness.loop) { harness.service.healthReason == "permission denied on transit/keys/kek" })
    }

    @Test func anUnreachableVaultIsReportedInHealthAndLoginIsRetried() throws {
        let harness = try BrokerHarness { vault in vault.script = { _ in .transport(.connectFailed) } }
        harness.service.start()
        #expect(runLoop(harness.loop) { harness.service.healthReason == "vault unreachable" })
        #expect(runLoop(harness.loop, timeoutMillis: 3000) { harness.vault.requests(to: "/login").count >= 2 })
    }

    @Test func shutdownWaitsForVaultCallsInFlightThenCompletes() throws {
        let harness = try BrokerHarness()
        #expect(ready(harness))
        harness.vault.script = { $0.path.contains("/encrypt/") ? .hold : nil }
        harness.send(
            .encryptRequest, id: 3, payload: EncryptRequest(deadlineMillis: 3000, uid: "u", plaintext: [1]).payload())
        #expect(runLoop(harness.loop) { harness.vault.inFlightCount == 1 })
        var done = false
        harness.service.shutdown { done = true }
        runLoop(harness.loop, forMillis: 50)
        #expect(!done)
        harness.vault.releaseHeld()
        #expect(runLoop(harness.loop) { done })
        #expect(try harness.waitForAnswer(id: 3).flatMap { try $0.answer().encrypt?.code } == .ok)
        #expect(harness.service.healthReason == "shutting down")
    }

    @Test func noSecretAppearsInAnyLogLine() throws {
        let harness = try BrokerHarness()
        #expect(ready(harness))
        _ = try encrypt(harness, id: 3)
        harness.vault.validTokens.removeAll()
        _ = try encrypt(harness, id: 4)
        let text = harness.logs.events.map { "\($0.message) \($0.fields)" }.joined(separator: "\n")
        #expect(!text.contains(BrokerHarness.secretID))
        #expect(!text.contains("hvs.faketoken"))
    }
}

extension String.UTF8View {
    fileprivate var base64: String {
        let buffer = WipedBuffer(capacity: 64)
        Base64.encode(Array(self), into: buffer)
        return String(decoding: buffer.bytes, as: UTF8.self)
    }
}
