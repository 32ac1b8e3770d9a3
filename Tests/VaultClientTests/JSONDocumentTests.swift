import KMSRuntime
import Testing

@testable import VaultClient

/// The strict reader under every Vault answer the broker reads: what it accepts, and the error
/// each kind of bad body gets.
struct JSONDocumentTests {
    private func read<R>(_ text: String, _ use: (JSONDocument.Value) throws(JSONDocument.Failure) -> R)
        -> Result<R, JSONDocument.Failure>
    {
        let body = WipedBuffer(capacity: text.utf8.count)
        body.append(text)
        return JSONDocument.read(body, use)
    }

    private func failure(_ text: String) -> JSONDocument.Failure? {
        if case .failure(let failure) = read(text, { _ in () }) { return failure }
        return nil
    }

    @Test func readsTheFieldsOfAnEncryptAnswer() throws {
        let answer =
            #"{"request_id":"r","lease_id":"","data":{"ciphertext":"vault:v3:AbCd","key_version":3},"warnings":null}"#
        let (ciphertext, version) = try read(answer) { root throws(JSONDocument.Failure) in
            let data = try root.member("data")
            return (try data.member("ciphertext").string(), try data.member("key_version").int64())
        }.get()
        #expect(ciphertext == "vault:v3:AbCd")
        #expect(version == 3)
    }

    @Test func truncatedBodiesAreTruncatedAndBadGrammarIsMalformed() {
        for text in [
            "", "{", #"{"data":{"ciphertext":"vault:v1"#, #"{"a":1"#, #"{"a":tr"#, #"{"a":-"#, #"{"a":"\u12"#, "nul",
        ] {
            #expect(failure(text) == .truncated, "\(text)")
        }
        for text in [
            #"{"a":1}x"#, #"{"a":01}"#, #"{"a":1.}"#, #"{a:1}"#, #"{"a":'x'}"#, #"{"a":"\q"}"#, "[1,]", "nulx", "[1 2]",
        ] {
            #expect(failure(text) == .malformed, "\(text)")
        }
        #expect(failure(String(repeating: "[", count: 65) + String(repeating: "]", count: 65)) == .tooDeep)
        #expect(failure(String(repeating: "[", count: 64) + String(repeating: "]", count: 64)) == nil)
    }

    @Test func invalidUTF8InAStringIsMalformed() {
        for bytes: [UInt8] in [[0xC0, 0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xFF]] {
            let body = WipedBuffer(capacity: 16)
            body.append(#"{"a":""#)
            body.append(contentsOf: bytes)
            body.append(#""}"#)
            #expect(throws: JSONDocument.Failure.malformed) { try JSONDocument.read(body) { _ in () }.get() }
        }
    }

    @Test func aDuplicateKeyIsRefusedWhenItIsReadNotGuessed() {
        #expect(
            read(#"{"data":{"plaintext":"a","plaintext":"b"}}"#) { root throws(JSONDocument.Failure) in
                try root.member("data").member("plaintext").secret(maxBytes: 64)
            }.map { _ in true } == .failure(.duplicate("plaintext")))
        // A key written with an escape is the same key.
        #expect(
            read(#"{"ttl":1,"t\u0074l":2}"#) { root throws(JSONDocument.Failure) in try root.member("ttl").int64() }
                == .failure(.duplicate("ttl")))
        #expect(
            read(#"{"keys":{"1":5,"1":6}}"#) { root throws(JSONDocument.Failure) in
                try root.member("keys").members().count
            }
                == .failure(.duplicate("keys member")))
    }

    @Test func wrongTypesAndMissingKeysNameTheKey() {
        #expect(
            read(#"{"key_version":"3"}"#) { root throws(JSONDocument.Failure) in try root.member("key_version").int64()
            }
                == .failure(.wrongType("key_version")))
        #expect(
            read(#"{"renewable":1}"#) { root throws(JSONDocument.Failure) in try root.member("renewable").bool() }
                == .failure(.wrongType("renewable")))
        #expect(
            read(#"{"data":null}"#) { root throws(JSONDocument.Failure) in try root.member("data").member("x").int64() }
                == .failure(.wrongType("data")))
        #expect(
            read(#"{}"#) { root throws(JSONDocument.Failure) in try root.member("lease_duration").int64() }
                == .failure(.missing("lease_duration")))
        #expect(JSONDocument.Failure.missing("lease_duration").description == "missing lease_duration")
    }

    @Test func numbersAreReadLenientlyButNeverWrappedOrClamped() {
        func number(_ literal: String) -> Result<Int64, JSONDocument.Failure> {
            read(#"{"n":"# + literal + "}") { root throws(JSONDocument.Failure) in try root.member("n").int64() }
        }
        #expect(number("1718000000") == .success(1_718_000_000))
        #expect(number("-42") == .success(-42))
        #expect(number("9223372036854775807") == .success(Int64.max))
        #expect(number("-9223372036854775808") == .success(Int64.min))
        #expect(number("1.718e9") == .success(1_718_000_000))
        #expect(number("3.9") == .success(3))
        #expect(number("-3.9") == .success(-3))
        #expect(number("9223372036854775808") == .failure(.outOfRange("n")))
        #expect(number("-9223372036854775809") == .failure(.outOfRange("n")))
        #expect(number("1e19") == .failure(.outOfRange("n")))
        #expect(number("1e999") == .failure(.outOfRange("n")))
        #expect(number(String(repeating: "9", count: 400)) == .failure(.outOfRange("n")))
    }

    @Test func secretsComeOutAsSecretBytesUnescapedAndBounded() throws {
        let plain = try read(#"{"t":"hvs.abc"}"#) { root throws(JSONDocument.Failure) in
            try root.member("t").secret(maxBytes: 7)
        }.get()
        #expect(plain.withUnsafeBytes { Array($0) } == Array("hvs.abc".utf8))
        #expect("\(plain)" == "<redacted>")
        let escaped = try read(#"{"t":"a\"b\\c\/\n\u00e9\ud83d\ude00"}"#) { root throws(JSONDocument.Failure) in
            try root.member("t").secret(maxBytes: 64)
        }.get()
        #expect(escaped.withUnsafeBytes { Array($0) } == Array("a\"b\\c/\né😀".utf8))
        #expect(
            read(#"{"t":"hvs.abcd"}"#) { root throws(JSONDocument.Failure) in try root.member("t").secret(maxBytes: 7) }
                .map { _ in true } == .failure(.tooLong("t")))
        #expect(
            read(#"{"t":"\u0041\u0042\u0043"}"#) { root throws(JSONDocument.Failure) in
                try root.member("t").secret(maxBytes: 2)
            }.map { _ in true } == .failure(.tooLong("t")))
    }

    @Test func membersAndElementsKeepDocumentOrder() throws {
        let (keys, errors) = try read(#"{"keys":{"2":1,"10":{"x":1},"3":2},"errors":["a","b\n"]}"#) {
            root throws(JSONDocument.Failure) in
            let keys = try root.member("keys").members().map(\.key)
            var errors: [String] = []
            for element in try root.member("errors").elements() { errors.append(try element.string()) }
            return (keys, errors)
        }.get()
        #expect(keys == ["2", "10", "3"])
        #expect(errors == ["a", "b\n"])
    }
}
