import Testing

@testable import KMSCore

struct KeyIDTests {
    let digest = "00112233445566778899aabbccddeeff"

    @Test func formatsWithReadableVersionPrefix() throws {
        let id = try #require(KeyID(version: 3, digestHex: digest))
        #expect(id.description == "transit-v3-\(digest)")
        #expect(KeyID(parsing: id.description) == id)
    }

    @Test func parsingRefusesEverythingOffTheScheme() {
        for text in [
            "", "transit-v", "transit-v0-\(digest)", "transit-v01-\(digest)", "transit-v1-\(digest.uppercased())",
            "transit-v1-\(digest)0", "transit-v1-\(digest.dropLast())", "transit-vx-\(digest)", "vault:v1:abc",
            "transit-v-1-\(digest)", "transit-v1234567890-\(digest)",
        ] {
            #expect(KeyID(parsing: text) == nil, "\(text) should not parse")
        }
    }

    @Test func scopeDigestInputSeparatesComponents() {
        let a = KeyScope(namespace: "", mount: "a/b", keyName: "c", version: 1, creationTime: 1)
        let b = KeyScope(namespace: "", mount: "a", keyName: "b/c", version: 1, creationTime: 1)
        #expect(a.digestInput != b.digestInput)
        var c = a
        c.creationTime = 2
        #expect(a.digestInput != c.digestInput)
        var d = a
        d.namespace = "team"
        #expect(a.digestInput != d.digestInput)
    }

    @Test func vaultCiphertextPrefixYieldsTheVersion() {
        #expect(VaultCiphertextPrefix(parsing: Array("vault:v12:QUJD".utf8))?.version == 12)
        #expect(VaultCiphertextPrefix(parsing: Array("vault:v1:x".utf8))?.version == 1)
    }

    @Test func malformedCiphertextPrefixesAreRefused() {
        for text in [
            "", "vault:v1:", "vault:v0:abc", "vault:v:abc", "vault:vx:abc", "vault:v1abc", "vault1:v1:abc",
            "vault:v01:abc", "vault:v12345678901:abc", "k8s:enc:kms:v2:x",
        ] {
            #expect(VaultCiphertextPrefix(parsing: Array(text.utf8)) == nil, "\(text) should not parse")
        }
    }
}
