import Logging
import Testing

@testable import KMSRuntime

struct SecretBytesTests {
    @Test func everyTextualFormIsRedacted() {
        let secret = SecretBytes(Array("s.very-secret".utf8))
        #expect("\(secret)" == "<redacted>")
        #expect(String(reflecting: secret) == "<redacted>")
        #expect(secret.count == 13)
    }

    @Test func constantTimeEqualityComparesContentAndLength() {
        #expect(SecretBytes([1, 2, 3]).constantTimeEquals(SecretBytes([1, 2, 3])))
        #expect(!SecretBytes([1, 2, 3]).constantTimeEquals(SecretBytes([1, 2, 4])))
        #expect(!SecretBytes([1, 2, 3]).constantTimeEquals(SecretBytes([1, 2])))
    }

    @Test func jsonLogLinesEscapeControlCharactersAndQuotes() {
        let line = LineLogHandler.jsonLine(
            time: "t", level: .info, process: "broker", event: "e\"v", fields: ["reason": "a\nb\u{1}"])
        #expect(line == #"{"time":"t","level":"info","process":"broker","event":"e\"v","reason":"a\nb\u0001"}"#)
    }

    @Test func environmentVariableNamesFollowTheFlag() {
        #expect(EnvironmentFallback.variableName(forFlag: "vault-address") == "VAULT_KUBE_KMS_VAULT_ADDRESS")
        #expect(EnvironmentFallback.resolve("given", flag: "vault-address") == "given")
    }

    @Test func theRawBufferInitialiserCopiesTheSameBytesAsTheGenericOne() {
        let bytes: [UInt8] = Array(0...255)
        let copied = bytes.withUnsafeBytes { SecretBytes($0) }
        #expect(copied.withUnsafeBytes { Array($0) } == bytes)
        #expect(copied.constantTimeEquals(SecretBytes(bytes)))
        let empty = SecretBytes(UnsafeRawBufferPointer(start: nil, count: 0))
        #expect(empty.isEmpty)
        #expect(empty.withUnsafeBytes { $0.count } == 0)
    }
}
