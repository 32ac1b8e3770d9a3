import Testing

@testable import KMSCore

struct BrokerMessagesTests {
    @Test func everyMessageRoundTrips() throws {
        let hello = HelloRequest(frontVersion: "0.1.0")
        #expect(try HelloRequest.decode(hello.payload()) == hello)
        let helloAnswer = HelloAnswer(code: .ok, brokerVersion: "0.1.0", maxInFlight: 256)
        #expect(try HelloAnswer.decode(helloAnswer.payload()) == helloAnswer)
        let status = StatusAnswer(code: .ok, healthz: "ok", keyID: "transit-v1-00112233445566778899aabbccddeeff")
        #expect(try StatusAnswer.decode(status.payload()) == status)
        let encrypt = EncryptRequest(deadlineMillis: 3000, uid: "6b1f", plaintext: Array(repeating: 7, count: 32))
        #expect(try EncryptRequest.decode(encrypt.payload()) == encrypt)
        let encryptAnswer = EncryptAnswer(code: .ok, ciphertext: Array("vault:v1:abc".utf8), keyID: "k")
        #expect(try EncryptAnswer.decode(encryptAnswer.payload()) == encryptAnswer)
        let decrypt = DecryptRequest(deadlineMillis: 0, uid: "", keyID: "k", ciphertext: Array("vault:v1:abc".utf8))
        #expect(try DecryptRequest.decode(decrypt.payload()) == decrypt)
        let decryptAnswer = DecryptAnswer(code: .ok, plaintext: [1, 2, 3])
        #expect(try DecryptAnswer.decode(decryptAnswer.payload()) == decryptAnswer)
        #expect(try HeartbeatAnswer.decode(HeartbeatAnswer(code: .ok).payload()) == HeartbeatAnswer(code: .ok))
    }

    @Test func anErrorAnswerCarriesOnlyItsCode() throws {
        for code in BrokerErrorCode.allCases where code != .ok {
            #expect(EncryptAnswer(code: code, ciphertext: [1], keyID: "x").payload() == [code.rawValue])
            #expect(try EncryptAnswer.decode([code.rawValue]) == EncryptAnswer(code: code))
            #expect(try DecryptAnswer.decode([code.rawValue]) == DecryptAnswer(code: code))
            #expect(try StatusAnswer.decode([code.rawValue]) == StatusAnswer(code: code))
        }
    }

    @Test func anErrorAnswerWithExtraBytesIsRefused() {
        #expect(throws: BrokerProtocolError.trailingBytes(1)) {
            try DecryptAnswer.decode([BrokerErrorCode.unavailable.rawValue, 0])
        }
    }

    @Test func unknownErrorCodeIsRefused() {
        #expect(throws: BrokerProtocolError.unknownErrorCode(200)) { try HeartbeatAnswer.decode([200]) }
    }

    @Test func trailingBytesAfterTheLastFieldAreRefused() {
        let payload = EncryptRequest(deadlineMillis: 1, uid: "u", plaintext: [1]).payload() + [0]
        #expect(throws: BrokerProtocolError.trailingBytes(1)) { try EncryptRequest.decode(payload) }
    }

    @Test func aFieldCutShortIsTruncated() {
        let payload = DecryptRequest(deadlineMillis: 1, uid: "u", keyID: "k", ciphertext: [1, 2, 3]).payload()
        #expect(throws: BrokerProtocolError.truncated) { try DecryptRequest.decode(Array(payload.dropLast())) }
        #expect(throws: BrokerProtocolError.truncated) { try DecryptRequest.decode([0, 0]) }
    }

    @Test func fieldsAboveTheirLimitAreRefusedByName() {
        var writer = ByteWriter()
        writer.u32(0)
        writer.field([UInt8](repeating: 0x61, count: Limits.maxUIDBytes + 1))
        writer.field([1])
        #expect(throws: BrokerProtocolError.fieldTooLong("uid")) { try EncryptRequest.decode(writer.bytes) }

        writer = ByteWriter()
        writer.u32(0)
        writer.field([])
        writer.field([UInt8](repeating: 1, count: Limits.maxPlaintextBytes + 1))
        #expect(throws: BrokerProtocolError.fieldTooLong("plaintext")) { try EncryptRequest.decode(writer.bytes) }

        writer = ByteWriter()
        writer.u32(0)
        writer.field([])
        writer.field([UInt8](repeating: 0x61, count: Limits.maxKeyIDBytes + 1))
        writer.field([1])
        #expect(throws: BrokerProtocolError.fieldTooLong("key_id")) { try DecryptRequest.decode(writer.bytes) }
    }

    @Test func emptyPlaintextCiphertextAndKeyIDAreRefused() {
        #expect(throws: BrokerProtocolError.fieldEmpty("plaintext")) {
            try EncryptRequest.decode(EncryptRequest(deadlineMillis: 0, uid: "", plaintext: []).payload())
        }
        #expect(throws: BrokerProtocolError.fieldEmpty("key_id")) {
            try DecryptRequest.decode(DecryptRequest(deadlineMillis: 0, uid: "", keyID: "", ciphertext: [1]).payload())
        }
        #expect(throws: BrokerProtocolError.fieldEmpty("ciphertext")) {
            try DecryptRequest.decode(DecryptRequest(deadlineMillis: 0, uid: "", keyID: "k", ciphertext: []).payload())
        }
    }

    @Test func nonUTF8StringsAreRefused() {
        var writer = ByteWriter()
        writer.u32(0)
        writer.field([0xFF, 0xFE])
        writer.field([1])
        #expect(throws: BrokerProtocolError.invalidUTF8("uid")) { try EncryptRequest.decode(writer.bytes) }
    }

    @Test func theLargestLegalDecryptRequestFitsInOnePacket() {
        let request = DecryptRequest(
            deadlineMillis: 1, uid: String(repeating: "u", count: Limits.maxUIDBytes),
            keyID: String(repeating: "k", count: Limits.maxKeyIDBytes),
            ciphertext: [UInt8](repeating: 1, count: Limits.maxCiphertextBytes))
        let packet = BrokerFrame(type: .decryptRequest, requestID: 1, payload: request.payload()).encoded()
        #expect(packet.count <= Limits.maxBrokerPacketBytes)
    }

    @Test func emptyRequestsMustHaveNoPayload() throws {
        try decodeEmptyRequest([])
        #expect(throws: BrokerProtocolError.trailingBytes(2)) { try decodeEmptyRequest([0, 0]) }
    }
}
