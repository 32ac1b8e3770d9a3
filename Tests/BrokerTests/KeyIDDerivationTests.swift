import KMSCore
import Testing

@testable import Broker
@testable import VaultClient

struct KeyIDDerivationTests {
    let base = KeyScope(namespace: "", mount: "transit", keyName: "kek", version: 1, creationTime: 1_700_000_000)

    @Test func sha256MatchesTheKnownVector() {
        let hex = KeyIDDerivation.sha256(Array("abc".utf8)).map { String(format2: $0) }.joined()
        #expect(hex == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func theKeyIDIsStableAndParses() {
        let first = KeyIDDerivation.keyID(for: base)
        let second = KeyIDDerivation.keyID(for: base)
        #expect(first == second)
        #expect(first.description.hasPrefix("transit-v1-"))
        #expect(first.digestHex.count == 32)
        #expect(KeyID(parsing: first.description) == first)
    }

    @Test func theDigestIsTheFirstHalfOfSHA256OfTheScope() {
        let digest = KeyIDDerivation.sha256(base.digestInput).prefix(16).map { String(format2: $0) }.joined()
        #expect(KeyIDDerivation.keyID(for: base).digestHex == digest)
    }

    @Test func everyScopeComponentChangesTheKeyID() {
        var variants: [KeyScope] = []
        var scope = base
        scope.namespace = "team-a"
        variants.append(scope)
        scope = base
        scope.mount = "transit2"
        variants.append(scope)
        scope = base
        scope.keyName = "kek2"
        variants.append(scope)
        scope = base
        scope.version = 2
        variants.append(scope)
        scope = base
        scope.creationTime += 1  // deleted and re-created key
        variants.append(scope)
        let ids = Set([base].followed(by: variants).map { KeyIDDerivation.keyID(for: $0).description })
        #expect(ids.count == 6)
    }

    @Test func theCacheDerivesOneIDPerListedVersionAndAdoptsTheLatest() {
        var cache = KeyCache(namespace: "", mount: "transit", keyName: "kek")
        let metadata = KeyMetadata(
            type: "aes256-gcm96", latestVersion: 3, minDecryptionVersion: 2, creationTimes: [2: 10, 3: 20])
        #expect(cache.observe(metadata) == .healthy(activeVersion: 3, changed: true))
        #expect(cache.keyID(forVersion: 1) == nil)
        #expect(cache.keyID(forVersion: 2)?.version == 2)
        #expect(cache.activeKeyID == cache.keyID(forVersion: 3))
        #expect(cache.observe(metadata) == .healthy(activeVersion: 3, changed: false))
    }

    @Test func aDecreasingLatestVersionIsNeverAdopted() {
        var cache = KeyCache(namespace: "", mount: "transit", keyName: "kek")
        _ = cache.observe(
            KeyMetadata(
                type: "aes256-gcm96", latestVersion: 3, minDecryptionVersion: 1, creationTimes: [1: 1, 2: 2, 3: 3]))
        let update = cache.observe(
            KeyMetadata(type: "aes256-gcm96", latestVersion: 2, minDecryptionVersion: 1, creationTimes: [1: 1, 2: 2]))
        #expect(update == .unhealthy(reason: "key rolled back: latest_version 3 -> 2"))
        #expect(cache.activeVersion == 3)
    }
}

extension String {
    fileprivate init(format2 byte: UInt8) {
        let text = String(byte, radix: 16)
        self = byte < 0x10 ? "0" + text : text
    }
}

extension Array {
    fileprivate func followed(by other: [Element]) -> [Element] { self + other }
}
