import KMSCore
import KMSv2API
import Testing

@testable import Front

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

struct KMSServiceTests {
    /// The request as the broker reads it off the wire.
    static func forwarded(_ call: BrokerCall) throws -> BrokerRequest {
        try BrokerRequest.decode(try BrokerFrame.decode(call.request.encode(requestID: 1)))
    }

    /// A broker answer payload as BrokerClient decodes it for `method`'s request.
    static func answer(_ method: KMSMethod, _ payload: [UInt8]) throws(BrokerProtocolError) -> BrokerAnswer {
        let request: BrokerMessageType =
            switch method {
            case .status: .statusRequest
            case .encrypt: .encryptRequest
            case .decrypt: .decryptRequest
            }
        let type = request.answerType ?? request
        return try BrokerAnswer.decode(BrokerFrame(type: type, requestID: 1, payload: payload), answering: request)
    }

    static func bytes(_ message: V2_EncryptRequest) -> [UInt8] { (try? message.serializedBytes()) ?? [] }
    static func bytes(_ message: V2_DecryptRequest) -> [UInt8] { (try? message.serializedBytes()) ?? [] }

    static func encrypt(plaintextBytes: Int, uidBytes: Int = 36) -> [UInt8] {
        var request = V2_EncryptRequest()
        request.plaintext = Data(repeating: 7, count: plaintextBytes)
        request.uid = String(repeating: "u", count: uidBytes)
        return bytes(request)
    }

    static func decrypt(
        ciphertextBytes: Int = 60, keyIDBytes: Int = 43, uidBytes: Int = 36, annotations: [String: Data] = [:]
    ) -> [UInt8] {
        var request = V2_DecryptRequest()
        request.ciphertext = Data(repeating: 0x41, count: ciphertextBytes)
        request.keyID = String(repeating: "k", count: keyIDBytes)
        request.uid = String(repeating: "u", count: uidBytes)
        request.annotations = annotations
        return bytes(request)
    }

    @Test("methods are recognised by their full path only")
    func methodPaths() {
        #expect(KMSMethod(path: "/v2.KeyManagementService/Status") == .status)
        #expect(KMSMethod(path: "/v2.KeyManagementService/Encrypt") == .encrypt)
        #expect(KMSMethod(path: "/v2.KeyManagementService/Decrypt") == .decrypt)
        for path in [
            "/v2.KeyManagementService/status", "/v2beta1.KeyManagementService/Status", "/v2.KeyManagementService/",
            "v2.KeyManagementService/Status", "/v2.KeyManagementService/Status/", "",
        ] {
            #expect(KMSMethod(path: path) == nil)
        }
    }

    @Test("an Encrypt request becomes a broker ENCRYPT with the same fields and the deadline")
    func encryptForwarded() throws {
        var request = V2_EncryptRequest()
        request.plaintext = Data([1, 2, 3])
        request.uid = "6e2b6a4e-uid"
        let call = try KMSService.brokerCall(for: .encrypt, message: Self.bytes(request), deadlineMillis: 2_999)
        #expect(call.uid == "6e2b6a4e-uid")
        #expect(
            try Self.forwarded(call)
                == .encrypt(EncryptRequest(deadlineMillis: 2_999, uid: "6e2b6a4e-uid", plaintext: [1, 2, 3])))
    }

    @Test("a Decrypt request becomes a broker DECRYPT without the annotations")
    func decryptForwarded() throws {
        let message = Self.decrypt(
            ciphertextBytes: 10, keyIDBytes: 5, uidBytes: 3, annotations: ["a.example.com": Data([1])])
        let call = try KMSService.brokerCall(for: .decrypt, message: message, deadlineMillis: 0)
        #expect(
            try Self.forwarded(call)
                == .decrypt(
                    DecryptRequest(
                        deadlineMillis: 0, uid: "uuu", keyID: "kkkkk",
                        ciphertext: [UInt8](repeating: 0x41, count: 10))))
    }

    @Test("a Status request becomes an empty broker STATUS")
    func statusForwarded() throws {
        let call = try KMSService.brokerCall(for: .status, message: [], deadlineMillis: 100)
        #expect(call == BrokerCall(request: .status, uid: ""))
        #expect(call.request.encode(requestID: 1).count == BrokerFrame.headerBytes)
    }

    @Test("Encrypt plaintext must be 1 to maxPlaintextBytes and uid at most maxUIDBytes")
    func encryptLimits() throws {
        _ = try KMSService.brokerCall(for: .encrypt, message: Self.encrypt(plaintextBytes: 1), deadlineMillis: 0)
        _ = try KMSService.brokerCall(
            for: .encrypt,
            message: Self.encrypt(plaintextBytes: Limits.maxPlaintextBytes, uidBytes: Limits.maxUIDBytes),
            deadlineMillis: 0)
        for message in [
            Self.encrypt(plaintextBytes: 0), Self.encrypt(plaintextBytes: Limits.maxPlaintextBytes + 1),
            Self.encrypt(plaintextBytes: 32, uidBytes: Limits.maxUIDBytes + 1),
        ] {
            #expect(throws: GRPCStatus.self) {
                try KMSService.brokerCall(for: .encrypt, message: message, deadlineMillis: 0)
            }
            do {
                _ = try KMSService.brokerCall(for: .encrypt, message: message, deadlineMillis: 0)
            } catch {
                #expect(error.code == .invalidArgument)
            }
        }
    }

    @Test("Decrypt ciphertext, key_id, uid and annotations are held to their limits")
    func decryptLimits() throws {
        let half = Limits.maxAnnotationsBytes / 2
        let atLimit: [String: Data] = [
            "a.example.com": Data(count: half - 13), "b.example.com": Data(count: half - 13),
        ]
        _ = try KMSService.brokerCall(
            for: .decrypt,
            message: Self.decrypt(
                ciphertextBytes: Limits.maxCiphertextBytes, keyIDBytes: Limits.maxKeyIDBytes,
                uidBytes: Limits.maxUIDBytes,
                annotations: atLimit),
            deadlineMillis: 0)
        let overLimit: [String: Data] = [
            "a.example.com": Data(count: half - 13), "b.example.com": Data(count: half - 12),
        ]
        for message in [
            Self.decrypt(ciphertextBytes: 0), Self.decrypt(ciphertextBytes: Limits.maxCiphertextBytes + 1),
            Self.decrypt(keyIDBytes: 0), Self.decrypt(keyIDBytes: Limits.maxKeyIDBytes + 1),
            Self.decrypt(uidBytes: Limits.maxUIDBytes + 1), Self.decrypt(annotations: overLimit),
        ] {
            do {
                _ = try KMSService.brokerCall(for: .decrypt, message: message, deadlineMillis: 0)
                Issue.record("request over a limit accepted")
            } catch {
                #expect(error.code == .invalidArgument)
            }
        }
    }

    @Test(
        "a message that is not valid protobuf is INTERNAL",
        arguments: [[0xFF, 0xFF, 0xFF], [0x0A, 0x05, 0x01]] as [[UInt8]])
    func unparsable(message: [UInt8]) {
        for method in KMSMethod.allCases {
            #expect(throws: GRPCStatus(.internal, "cannot parse request message")) {
                try KMSService.brokerCall(for: method, message: message, deadlineMillis: 0)
            }
        }
    }

    @Test("a STATUS answer becomes a v2 StatusResponse; a broker error becomes a healthz reason")
    func statusResponse() throws {
        let ok = KMSService.response(
            to: try Self.answer(.status, StatusAnswer(code: .ok, healthz: "ok", keyID: "kid").payload()))
        let okResponse = try V2_StatusResponse(serializedBytes: try ok.get())
        #expect(okResponse.version == "v2" && okResponse.healthz == "ok" && okResponse.keyID == "kid")
        let notReady = KMSService.response(to: try Self.answer(.status, StatusAnswer(code: .notReady).payload()))
        let notReadyResponse = try V2_StatusResponse(serializedBytes: try notReady.get())
        #expect(notReadyResponse.version == "v2" && notReadyResponse.healthz == "broker: not-ready")
    }

    @Test("ENCRYPT and DECRYPT answers become responses; error codes become their statuses")
    func encryptDecryptResponses() throws {
        let encrypted = KMSService.response(
            to: try Self.answer(.encrypt, EncryptAnswer(code: .ok, ciphertext: [9, 9], keyID: "kid").payload()))
        let encryptResponse = try V2_EncryptResponse(serializedBytes: try encrypted.get())
        #expect(Array(encryptResponse.ciphertext) == [9, 9] && encryptResponse.keyID == "kid")
        #expect(encryptResponse.annotations.isEmpty)
        let decrypted = KMSService.response(
            to: try Self.answer(.decrypt, DecryptAnswer(code: .ok, plaintext: [1, 2]).payload()))
        #expect(Array(try V2_DecryptResponse(serializedBytes: try decrypted.get()).plaintext) == [1, 2])
        for code in BrokerErrorCode.allCases where code != .ok {
            #expect(
                KMSService.response(to: try Self.answer(.encrypt, [code.rawValue]))
                    == .failure(GRPCStatus(brokerCode: code)))
            #expect(
                KMSService.response(to: try Self.answer(.decrypt, [code.rawValue]))
                    == .failure(GRPCStatus(brokerCode: code)))
        }
    }

    @Test(
        "a malformed answer payload is a broker protocol error",
        arguments: [[], [0], [0, 0, 5, 1], [1, 0], [99]] as [[UInt8]])
    func malformedAnswers(payload: [UInt8]) {
        for method in KMSMethod.allCases {
            #expect(throws: BrokerProtocolError.self) { try Self.answer(method, payload) }
        }
    }
}
