import KMSCore
import Testing

@testable import Broker
@testable import VaultClient

/// Rotation damping and rollback refusal (DESIGN section 6), on the pure cache.
struct KeyCacheRotationTests {
    static func metadata(latest: UInt32, times: [UInt32: Int64]? = nil) -> KeyMetadata {
        let creation = times ?? Dictionary(uniqueKeysWithValues: (1...latest).map { ($0, 1_700_000_000 + Int64($0)) })
        return KeyMetadata(
            type: "aes256-gcm96", latestVersion: latest, minDecryptionVersion: 1, creationTimes: creation)
    }

    func cache() -> KeyCache { KeyCache(namespace: "", mount: "transit", keyName: "kek") }

    @Test func theFirstObservationIsAdoptedAtOnce() {
        var cache = cache()
        #expect(cache.observe(Self.metadata(latest: 3)) == .healthy(activeVersion: 3, changed: true))
        #expect(cache.activeVersion == 3)
    }

    @Test func aNewVersionBecomesActiveOnlyOnItsSecondConsecutiveObservation() {
        var cache = cache()
        _ = cache.observe(Self.metadata(latest: 1))
        #expect(cache.observe(Self.metadata(latest: 2)) == .healthy(activeVersion: 1, changed: false))
        #expect(cache.pendingVersion == 2)
        // The pending version is already decryptable (another broker may have adopted it).
        #expect(cache.keyID(forVersion: 2) != nil)
        #expect(cache.observe(Self.metadata(latest: 2)) == .healthy(activeVersion: 2, changed: true))
        #expect(cache.pendingVersion == nil)
        #expect(cache.activeKeyID?.version == 2)
    }

    @Test func aVersionSeenOnceThenSupersededStartsCountingAgain() {
        var cache = cache()
        _ = cache.observe(Self.metadata(latest: 1))
        _ = cache.observe(Self.metadata(latest: 2))
        #expect(cache.observe(Self.metadata(latest: 3)) == .healthy(activeVersion: 1, changed: false))
        #expect(cache.pendingVersion == 3)
        #expect(cache.observe(Self.metadata(latest: 3)) == .healthy(activeVersion: 3, changed: true))
    }

    @Test func aDecreasingLatestVersionIsReportedRolledBackAndNeverAdopted() {
        var cache = cache()
        _ = cache.observe(Self.metadata(latest: 3))
        guard case .unhealthy(let reason) = cache.observe(Self.metadata(latest: 2)) else {
            Issue.record("rollback accepted")
            return
        }
        #expect(reason.contains("rolled back"))
        #expect(cache.activeVersion == 3)
        // Still refused on the next probe: the rollback is not forgotten.
        #expect(cache.observe(Self.metadata(latest: 2)) != .healthy(activeVersion: 2, changed: true))
        #expect(cache.activeVersion == 3)
    }

    @Test func aRollbackBelowAPendingVersionIsRefusedToo() {
        var cache = cache()
        _ = cache.observe(Self.metadata(latest: 2))
        _ = cache.observe(Self.metadata(latest: 3))
        guard case .unhealthy(let reason) = cache.observe(Self.metadata(latest: 2)) else {
            Issue.record("rollback below a pending version accepted")
            return
        }
        #expect(reason.contains("rolled back"))
    }

    @Test func aKnownVersionWithANewCreationTimeIsRefusedAsRolledBack() {
        var cache = cache()
        _ = cache.observe(Self.metadata(latest: 1, times: [1: 1_700_000_000]))
        let before = cache.activeKeyID
        guard case .unhealthy(let reason) = cache.observe(Self.metadata(latest: 1, times: [1: 1_800_000_000])) else {
            Issue.record("re-created key accepted")
            return
        }
        #expect(reason.contains("rolled back"))
        #expect(cache.activeKeyID == before)
        #expect(cache.rolledBack)
    }
}
