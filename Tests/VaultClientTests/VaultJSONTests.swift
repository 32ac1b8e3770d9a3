import KMSRuntime
import Testing

@testable import VaultClient

/// Decoding of bodies shaped like Vault's (copied from Vault 1.17 answers, values changed).
struct VaultJSONTests {
    private func buffer(_ text: String) -> WipedBuffer {
        let buffer = WipedBuffer(capacity: text.utf8.count)
        buffer.append(text)
        return buffer
    }

    @Test func loginAnswerYieldsTokenLeaseAndRenewable() throws {
        let body = #"""
            {"request_id":"9b1c","lease_id":"","renewable":false,"lease_duration":0,"data":null,"wrap_info":null,
             "warnings":null,"auth":{"client_token":"hvs.CAESIJ3xyz","accessor":"hmac","policies":["default","kms"],
             "token_policies":["default","kms"],"metadata":{"role_name":"kms"},"lease_duration":2764800,"renewable":true,
             "entity_id":"","token_type":"service","orphan":true,"mfa_requirement":null,"num_uses":0},"mount_type":""}
            """#
        let token = try VaultToken.parse(VaultResponse(status: 200, body: buffer(body))).get()
        #expect(token.leaseSeconds == 2_764_800)
        #expect(token.renewable)
        #expect(token.secret.withUnsafeBytes { String(decoding: $0, as: UTF8.self) } == "hvs.CAESIJ3xyz")
        #expect("\(token.secret)" == "<redacted>")
    }

    @Test func aTokenWithControlCharactersIsRefused() {
        let body = #"{"auth":{"client_token":"hvs.a\r\nX-Evil: 1","lease_duration":60,"renewable":true}}"#
        #expect(throws: VaultCallError.self) {
            try VaultToken.parse(VaultResponse(status: 200, body: buffer(body))).get()
        }
    }

    @Test func aLoginAnswerThatIsNotExactlyOneTokenAndLeaseIsRefusedWithItsReason() {
        func reason(_ body: String) -> String? {
            guard case .failure(let error) = VaultToken.parse(VaultResponse(status: 200, body: buffer(body))) else {
                return nil
            }
            return error.reason
        }
        let malformedToken = "vault returned a malformed token"
        let noAuth = "auth block missing in vault answer"
        #expect(
            reason(#"{"auth":{"client_token":"a","client_token":"b","lease_duration":60,"renewable":true}}"#)
                == malformedToken)
        #expect(reason(#"{"auth":{"client_token":17,"lease_duration":60,"renewable":true}}"#) == malformedToken)
        #expect(reason(#"{"auth":{"client_token":"","lease_duration":60,"renewable":true}}"#) == malformedToken)
        #expect(reason(#"{"auth":{"client_token":"x","lease_duration":"60","renewable":true}}"#) == noAuth)
        #expect(
            reason(#"{"auth":{"client_token":"x","lease_duration":99999999999999999999,"renewable":true}}"#) == noAuth)
        #expect(reason(#"{"auth":{"client_token":"x","lease_duration":60,"renewable":"yes"}}"#) == noAuth)
        #expect(reason(#"{"auth":{"client_token":"x","lease_duration":60,"renewable":true}"#) == noAuth)
        #expect(reason(#"{"auth":null}"#) == noAuth)
        #expect(reason(#"{"auth":{"client_token":"x","lease_duration":60,"renewable":true}}"#) == nil)
        // A fractional or exponent lease is read by the one lenient number rule (truncated).
        let lenient = try? VaultToken.parse(
            VaultResponse(
                status: 200, body: buffer(#"{"auth":{"client_token":"x","lease_duration":3.6e3,"renewable":false}}"#))
        ).get()
        #expect(lenient?.leaseSeconds == 3600)
    }

    @Test func anEncryptAnswerWithAWrongTypeOrADuplicateIsNotDecoded() {
        for body in [
            #"{"data":{"ciphertext":"vault:v1:AA==","key_version":"1"}}"#,
            #"{"data":{"ciphertext":"vault:v1:AA==","key_version":1,"key_version":2}}"#,
            #"{"data":{"ciphertext":["vault:v1:AA=="],"key_version":1}}"#,
            #"{"data":{"ciphertext":"vault:v1:AA==","key_version":1e30}}"#,
            #"{"data":{"ciphertext":"vault:v1:AA==","key_version":1}"#,
        ] {
            #expect(VaultJSON.decode(VaultJSON.EncryptResponse.self, from: buffer(body)) == nil, "\(body)")
        }
    }

    @Test func keyMetadataWithIntegerCreationTimesDecodes() throws {
        let body = #"""
            {"request_id":"r","lease_id":"","renewable":false,"lease_duration":0,"data":{"allow_plaintext_backup":false,
             "auto_rotate_period":0,"deletion_allowed":false,"derived":false,"exportable":false,"imported_key":false,
             "keys":{"2":1718000000,"3":1719000000},"latest_version":3,"min_available_version":0,"min_decryption_version":2,
             "min_encryption_version":0,"name":"kek","supports_decryption":true,"supports_derivation":true,
             "supports_encryption":true,"supports_signing":false,"type":"aes256-gcm96"},"wrap_info":null,"warnings":null,"auth":null}
            """#
        let decoded = try #require(VaultJSON.decode(VaultJSON.KeyResponse.self, from: buffer(body)))
        let metadata = try #require(KeyMetadata(decoded))
        #expect(metadata.type == "aes256-gcm96")
        #expect(metadata.latestVersion == 3)
        #expect(metadata.minDecryptionVersion == 2)
        #expect(metadata.creationTimes == [2: 1_718_000_000, 3: 1_719_000_000])
    }

    @Test func asymmetricKeyMetadataStillDecodesSoTheTypeCanBeReported() throws {
        let body = #"""
            {"data":{"keys":{"1":{"creation_time":"2024-06-10T08:00:00Z","name":"rsa-2048","public_key":"-----BEGIN"}},
             "latest_version":1,"min_decryption_version":1,"type":"rsa-2048"}}
            """#
        let decoded = try #require(VaultJSON.decode(VaultJSON.KeyResponse.self, from: buffer(body)))
        let metadata = try #require(KeyMetadata(decoded))
        #expect(metadata.type == "rsa-2048")
        #expect(metadata.creationTimes.isEmpty)
    }

    @Test func encryptAndDecryptAnswersDecode() throws {
        let encrypt = try #require(
            VaultJSON.decode(
                VaultJSON.EncryptResponse.self,
                from: buffer(
                    #"{"request_id":"r","data":{"ciphertext":"vault:v3:AbCd","key_version":3},"warnings":null}"#)))
        #expect(encrypt.data.ciphertext == Array("vault:v3:AbCd".utf8))
        #expect(encrypt.data.key_version == 3)
        let decrypt = try SecretJSONField.base64(
            at: ["data", "plaintext"], in: buffer(#"{"data":{"plaintext":"aGVsbG8="},"auth":null}"#),
            maxDecodedBytes: 64
        ).get()
        #expect(decrypt.withUnsafeBytes { Array($0) } == Array("hello".utf8))
    }

    @Test func errorAnswersYieldTheirMessages() {
        #expect(VaultJSON.errors(in: buffer(#"{"errors":["permission denied"]}"#)) == ["permission denied"])
        #expect(VaultJSON.errors(in: buffer(#"{"errors":[]}"#)).isEmpty)
        #expect(VaultJSON.errors(in: buffer("<html>")).isEmpty)
    }

    @Test func theLoginBodyEscapesTheSecretID() {
        let secret = SecretBytes(Array("a\"b\\c\u{1}".utf8))
        let request = AppRoleLogin(authMount: "approle", roleID: "role\"x", namespace: nil).request(
            secretID: secret, timeoutMillis: 1000)
        let body = request.body.map { String(decoding: $0.bytes, as: UTF8.self) }
        #expect(body == #"{"role_id":"role\"x","secret_id":"a\"b\\c\u0001"}"#)
        #expect(request.path == "auth/approle/login")
        #expect(request.token == nil)
    }

    @Test func base64MatchesTheStandardEncoding() {
        for (input, expected) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foobar", "Zm9vYmFy")] {
            let buffer = WipedBuffer(capacity: 8)
            Base64.encode(Array(input.utf8), into: buffer)
            #expect(String(decoding: buffer.bytes, as: UTF8.self) == expected)
        }
    }
}
