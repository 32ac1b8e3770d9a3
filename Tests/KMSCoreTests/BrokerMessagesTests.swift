import Testing

@testable import KMSCore

struct BrokerMessagesTests {
    /// A payload decoded through the protocol's one entry point for requests.
    func request(_ type: BrokerMessageType, _ payload: [UInt8]) throws(BrokerProtocolError) -> BrokerRequest {
        try BrokerRequest.decode(BrokerFrame(type: type, requestID: 1, payload: payload))
    }

    /// A payload decoded through the protocol's one entry point for answers.
    func answer(_ type: BrokerMessageType, _ payload: [UInt8]) throws(BrokerProtocolError) -> BrokerAnswer {
        let request = BrokerProtocol.request(answeredBy: type) ?? type
        return try BrokerAnswer.decode(BrokerFrame(type: type, requestID: 1, payload: payload), answering: request)
    }

    @Test func everyMessageRoundTrips() throws {
        let hello = HelloRequest(frontVersion: "0.1.0")
        #expect(try request(.helloRequest, hello.payload()) == .hello(hello))
        let helloAnswer = HelloAnswer(code: .ok, brokerVersion: "0.1.0", maxInFlight: 256)
        #expect(try answer(.helloAnswer, helloAnswer.payload()) == .hello(helloAnswer))
        let status = StatusAnswer(code: .ok, healthz: "ok", keyID: "transit-v1-00112233445566778899aabbccddeeff")
        #expect(try answer(.statusAnswer, status.payload()) == .status(status))
        let encrypt = EncryptRequest(deadlineMillis: 3000, uid: "6b1f", plaintext: Array(repeating: 7, count: 32))
        #expect(try request(.encryptRequest, encrypt.payload()) == .encrypt(encrypt))
        let encryptAnswer = EncryptAnswer(code: .ok, ciphertext: Array("vault:v1:abc".utf8), keyID: "k")
        #expect(try answer(.encryptAnswer, encryptAnswer.payload()) == .encrypt(encryptAnswer))
        let decrypt = DecryptRequest(deadlineMillis: 0, uid: "", keyID: "k", ciphertext: Array("vault:v1:abc".utf8))
        #expect(try request(.decryptRequest, decrypt.payload()) == .decrypt(decrypt))
        let decryptAnswer = DecryptAnswer(code: .ok, plaintext: [1, 2, 3])
        #expect(try answer(.decryptAnswer, decryptAnswer.payload()) == .decrypt(decryptAnswer))
        #expect(
            try answer(.heartbeatAnswer, HeartbeatAnswer(code: .ok).payload()) == .heartbeat(HeartbeatAnswer(code: .ok))
        )
    }

    @Test func anErrorAnswerCarriesOnlyItsCode() throws {
        for code in BrokerErrorCode.allCases where code != .ok {
            #expect(EncryptAnswer(code: code, ciphertext: [1], keyID: "x").payload() == [code.rawValue])
            #expect(try answer(.encryptAnswer, [code.rawValue]) == .encrypt(EncryptAnswer(code: code)))
            #expect(try answer(.decryptAnswer, [code.rawValue]) == .decrypt(DecryptAnswer(code: code)))
            #expect(try answer(.statusAnswer, [code.rawValue]) == .status(StatusAnswer(code: code)))
        }
    }

    @Test func anErrorAnswerWithExtraBytesIsRefused() {
        #expect(throws: BrokerProtocolError.trailingBytes(1)) {
            try answer(.decryptAnswer, [BrokerErrorCode.unavailable.rawValue, 0])
        }
    }

    @Test func unknownErrorCodeIsRefused() {
        #expect(throws: BrokerProtocolError.unknownErrorCode(200)) { try answer(.heartbeatAnswer, [200]) }
    }

    @Test func trailingBytesAfterTheLastFieldAreRefused() {
        let payload = EncryptRequest(deadlineMillis: 1, uid: "u", plaintext: [1]).payload() + [0]
        #expect(throws: BrokerProtocolError.trailingBytes(1)) { try request(.encryptRequest, payload) }
    }

    @Test func aFieldCutShortIsTruncated() {
        let payload = DecryptRequest(deadlineMillis: 1, uid: "u", keyID: "k", ciphertext: [1, 2, 3]).payload()
        #expect(throws: BrokerProtocolError.truncated) { try request(.decryptRequest, Array(payload.dropLast())) }
        #expect(throws: BrokerProtocolError.truncated) { try request(.decryptRequest, [0, 0]) }
    }

    @Test func fieldsAboveTheirLimitAreRefusedByName() {
        var writer = ByteWriter()
        writer.u32(0)
        writer.field([UInt8](repeating: 0x61, count: Limits.maxUIDBytes + 1))
        writer.field([1])
        #expect(throws: BrokerProtocolError.fieldTooLong("uid")) { try request(.encryptRequest, writer.bytes) }

        writer = ByteWriter()
        writer.u32(0)
        writer.field([])
        writer.field([UInt8](repeating: 1, count: Limits.maxPlaintextBytes + 1))
        #expect(throws: BrokerProtocolError.fieldTooLong("plaintext")) { try request(.encryptRequest, writer.bytes) }

        writer = ByteWriter()
        writer.u32(0)
        writer.field([])
        writer.field([UInt8](repeating: 0x61, count: Limits.maxKeyIDBytes + 1))
        writer.field([1])
        #expect(throws: BrokerProtocolError.fieldTooLong("key_id")) { try request(.decryptRequest, writer.bytes) }
    }

    @Test func emptyPlaintextCiphertextAndKeyIDAreRefused() {
        #expect(throws: BrokerProtocolError.fieldEmpty("plaintext")) {
            try request(.encryptRequest, EncryptRequest(deadlineMillis: 0, uid: "", plaintext: []).payload())
        }
        #expect(throws: BrokerProtocolError.fieldEmpty("key_id")) {
            try request(
                .decryptRequest, DecryptRequest(deadlineMillis: 0, uid: "", keyID: "", ciphertext: [1]).payload())
        }
        #expect(throws: BrokerProtocolError.fieldEmpty("ciphertext")) {
            try request(
                .decryptRequest, DecryptRequest(deadlineMillis: 0, uid: "", keyID: "k", ciphertext: []).payload())
        }
    }

    @Test func nonUTF8StringsAreRefused() {
        var writer = ByteWriter()
        writer.u32(0)
        writer.field([0xFF, 0xFE])
        writer.field([1])
        #expect(throws: BrokerProtocolError.invalidUTF8("uid")) { try request(.encryptRequest, writer.bytes) }
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
        #expect(try request(.statusRequest, []) == .status)
        #expect(try request(.metricsRequest, []) == .metrics)
        #expect(try request(.heartbeatRequest, []) == .heartbeat)
        for type in [BrokerMessageType.statusRequest, .metricsRequest, .heartbeatRequest] {
            #expect(throws: BrokerProtocolError.trailingBytes(2)) { try request(type, [0, 0]) }
        }
    }
}
