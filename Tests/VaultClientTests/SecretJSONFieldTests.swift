import KMSRuntime
import Testing

@testable import VaultClient

/// The strict reader that takes the token and the Transit plaintext out of Vault's answers.
struct SecretJSONFieldTests {
    private func body(_ text: String) -> WipedBuffer {
        let buffer = WipedBuffer(capacity: text.utf8.count)
        buffer.append(text)
        return buffer
    }

    private func read(_ text: String, _ path: [String] = ["auth", "client_token"], maxBytes: Int = 4096)
        -> Result<[UInt8], SecretJSONField.Failure>
    {
        SecretJSONField.string(at: path, in: body(text), maxBytes: maxBytes).map { $0.withUnsafeBytes { Array($0) } }
    }

    /// The reader's only output is SecretBytes: the secret cannot come out as a String (its text
    /// forms are `<redacted>`), so no caller can turn it into one by accident.
    @Test func outputIsSecretBytesWhoseTextIsRedacted() throws {
        let result: Result<SecretBytes, SecretJSONField.Failure> = SecretJSONField.string(
            at: ["auth", "client_token"], in: body(#"{"auth":{"client_token":"hvs.SECRET"}}"#), maxBytes: 64)
        let secret = try result.get()
        #expect(secret.withUnsafeBytes { Array($0) } == Array("hvs.SECRET".utf8))
        #expect("\(secret)" == "<redacted>")
        #expect(String(reflecting: secret) == "<redacted>")
    }

    @Test func readsTheFieldFromAVaultShapedLoginAnswer() {
        let answer = #"""
            {"request_id":"9b1c","lease_id":"","renewable":false,"lease_duration":0,"data":null,"warnings":null,
             "auth":{"accessor":"hmac","policies":["default","kms"],"client_token":"hvs.CAESIJ3xyz",
             "metadata":{"role_name":"kms","client_token":"not this one"},"lease_duration":2764800,
             "renewable":true,"num_uses":0,"x":-1.5e+10}}
            """#
        #expect(read(answer) == .success(Array("hvs.CAESIJ3xyz".utf8)))
    }

    @Test func unescapesEveryJSONEscapeIncludingSurrogatePairs() {
        let answer = #"{"auth":{"client_token":"a\"b\\c\/d\b\f\n\r\t\u0041\u00e9\u20ac\ud83d\ude00"}}"#
        let expected: [UInt8] =
            Array("a\"b\\c/d".utf8) + [0x08, 0x0C, 0x0A, 0x0D, 0x09] + Array("Aé€😀".utf8)
        #expect(read(answer) == .success(expected))
    }

    @Test func rawMultibyteUTF8IsKeptAndInvalidUTF8Refused() {
        #expect(read(#"{"auth":{"client_token":"é€😀"}}"#) == .success(Array("é€😀".utf8)))
        for bad: [UInt8] in [[0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0x80], [0xE2, 0x82]] {
            let bytes = Array(#"{"auth":{"client_token":""#.utf8) + bad + Array(#""}}"#.utf8)
            let buffer = WipedBuffer(capacity: bytes.count)
            buffer.append(contentsOf: bytes)
            let result = SecretJSONField.string(at: ["auth", "client_token"], in: buffer, maxBytes: 64)
            #expect(throws: SecretJSONField.Failure.malformed, "\(bad)") { try result.get() }
        }
    }

    @Test func malformedDocumentsAreRefusedWhereverTheErrorIs() {
        let cases = [
            #"{"auth":{"client_token":"x"}} trailing"#,
            #"{"auth":{"client_token":"x"},}"#,
            #"{"auth":{"client_token":"x"}"#,
            #"{"auth":{"client_token":"\x"}}"#,
            #"{"auth":{"client_token":"\ud83d"}}"#,
            #"{"auth":{"client_token":"\ude00"}}"#,
            #"{"auth":{"client_token":"\u12G4"}}"#,
            "{\"auth\":{\"client_token\":\"a\u{01}b\"}}",
            #"{"auth":{"client_token":"x"},"n":01}"#,
            #"{"auth":{"client_token":"x"},"n":1.}"#,
            #"{"auth":{"client_token":"x"},"n":tru}"#,
            #"{"auth":{"client_token":'x'}}"#,
            #"{auth:{"client_token":"x"}}"#,
            String(repeating: "[", count: 100) + String(repeating: "]", count: 100),
            "",
        ]
        for text in cases { #expect(read(text) == .failure(.malformed), "\(text)") }
    }

    @Test func missingNonStringDuplicateAndOverlongAreTheirOwnFailures() {
        #expect(read(#"{"auth":null}"#) == .failure(.missing))
        #expect(read(#"{"data":{"client_token":"x"}}"#) == .failure(.missing))
        #expect(read(#"{"auth":{"client_token":17}}"#) == .failure(.notAString))
        #expect(read(#"{"auth":{"client_token":["x"]}}"#) == .failure(.notAString))
        #expect(read(#"{"auth":{"client_token":"x","client_token":"y"}}"#) == .failure(.duplicate))
        #expect(read(#"{"auth":{"client_token":"x"},"auth":{"client_token":"y"}}"#) == .failure(.duplicate))
        #expect(read(#"{"auth":{"client_token":"abcdef"}}"#, maxBytes: 5) == .failure(.tooLong))
        #expect(read(#"{"auth":{"client_token":"abcde"}}"#, maxBytes: 5) == .success(Array("abcde".utf8)))
    }

    @Test func base64PlaintextDecodesIntoSecretBytesAndBadBase64IsRefused() throws {
        let decoded = try SecretJSONField.base64(
            at: ["data", "plaintext"], in: body(#"{"data":{"plaintext":"AAECAwQ="}}"#), maxDecodedBytes: 64
        ).get()
        #expect(decoded.withUnsafeBytes { Array($0) } == [0, 1, 2, 3, 4])
        for bad in ["AAECAwQ", "AAEC=wQ=", "AA==AAAA", "A===", "AAECAwR=", "AAE-", "AAE\\u0000"] {
            let result = SecretJSONField.base64(
                at: ["data", "plaintext"], in: body(#"{"data":{"plaintext":"\#(bad)"}}"#), maxDecodedBytes: 64)
            #expect(throws: SecretJSONField.Failure.malformed, "\(bad)") { try result.get() }
        }
        let long = SecretJSONField.base64(
            at: ["data", "plaintext"], in: body(#"{"data":{"plaintext":"AAAAAAAA"}}"#), maxDecodedBytes: 5)
        #expect(throws: SecretJSONField.Failure.tooLong) { try long.get() }
    }

    /// Every length 0...40 round-trips through the project's encoder and this decoder.
    @Test func base64RoundTripsTheEncoder() {
        for length in 0...40 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            let encoded = WipedBuffer(capacity: 64)
            Base64.encode(bytes, into: encoded)
            let decoded = encoded.withUnsafeBytes { Base64.decode(SecretBytes($0)) }
            #expect(decoded?.withUnsafeBytes { Array($0) } == bytes, "\(length)")
        }
    }
}
