import KMSv2API
import SwiftProtobuf
import Testing

@testable import KMSProbe

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// The probe's hand-written protobuf codec against the generated KMS v2 types: what it encodes,
/// SwiftProtobuf decodes to the same values, and what SwiftProtobuf encodes, it decodes.
struct ProbeMessagesTests {
    @Test func encryptRequestDecodesAsTheGeneratedType() throws {
        let plaintext = (0..<200).map { UInt8($0) }
        let bytes = ProbeMessages.encryptRequest(plaintext: plaintext, uid: "probe-ü-1")
        let decoded = try V2_EncryptRequest(serializedBytes: bytes)
        #expect(Array(decoded.plaintext) == plaintext)
        #expect(decoded.uid == "probe-ü-1")
    }

    @Test func decryptRequestDecodesAsTheGeneratedType() throws {
        let ciphertext = Array("vault:v3:".utf8) + Array(repeating: 0x41, count: 300)
        let bytes = ProbeMessages.decryptRequest(ciphertext: ciphertext, uid: "u", keyID: "transit-v3-abc")
        let decoded = try V2_DecryptRequest(serializedBytes: bytes)
        #expect(Array(decoded.ciphertext) == ciphertext)
        #expect(decoded.uid == "u")
        #expect(decoded.keyID == "transit-v3-abc")
        #expect(decoded.annotations.isEmpty)
    }

    @Test func statusResponseFromTheGeneratedTypeDecodes() throws {
        var response = V2_StatusResponse()
        response.version = "v2"
        response.healthz = "ok"
        response.keyID = "transit-v1-" + String(repeating: "ab", count: 16)
        let bytes: [UInt8] = try response.serializedBytes()
        let decoded = try ProbeMessages.StatusResponse(decoding: bytes)
        #expect(decoded == .init(version: "v2", healthz: "ok", keyID: response.keyID))
    }

    @Test func encryptResponseWithAnnotationsDecodesAndSkipsThem() throws {
        var response = V2_EncryptResponse()
        response.ciphertext = Data(Array("vault:v1:QUJD".utf8))
        response.keyID = "transit-v1-x"
        response.annotations = ["a.example.com": Data([1, 2, 3]), "b.example.com": Data()]
        let bytes: [UInt8] = try response.serializedBytes()
        let decoded = try ProbeMessages.EncryptResponse(decoding: bytes)
        #expect(decoded.ciphertext == Array("vault:v1:QUJD".utf8))
        #expect(decoded.keyID == "transit-v1-x")
    }

    @Test func decryptResponseFromTheGeneratedTypeDecodes() throws {
        var response = V2_DecryptResponse()
        response.plaintext = Data((0..<32).map { UInt8($0) })
        let bytes: [UInt8] = try response.serializedBytes()
        #expect(try ProbeMessages.DecryptResponse(decoding: bytes).plaintext == (0..<32).map { UInt8($0) })
    }

    @Test func unknownFieldsOfEveryWireTypeAreSkipped() throws {
        // field 9 varint 300, field 10 fixed64, field 11 fixed32, then healthz "ok"
        let bytes: [UInt8] =
            [0x48, 0xAC, 0x02] + [0x51] + Array(repeating: 0, count: 8) + [0x5D, 1, 2, 3, 4] + [0x12, 2, 0x6F, 0x6B]
        #expect(try ProbeMessages.StatusResponse(decoding: bytes).healthz == "ok")
    }

    @Test func truncatedAndMalformedMessagesAreRefused() {
        #expect(throws: ProtobufError.truncated) { try ProbeMessages.StatusResponse(decoding: [0x12, 5, 0x6F]) }
        #expect(throws: ProtobufError.truncated) { try ProbeMessages.StatusResponse(decoding: [0x48, 0x80]) }
        #expect(throws: ProtobufError.invalidWireType(3)) { try ProbeMessages.StatusResponse(decoding: [0x0B]) }
        #expect(throws: ProtobufError.invalidFieldNumber) { try ProbeMessages.StatusResponse(decoding: [0x02, 0]) }
        #expect(throws: ProtobufError.wrongWireType(field: 2)) {
            try ProbeMessages.StatusResponse(decoding: [0x10, 1])
        }
        #expect(throws: ProtobufError.invalidUTF8(field: 2)) {
            try ProbeMessages.StatusResponse(decoding: [0x12, 1, 0xFF])
        }
        let overlong = [0x48] + Array(repeating: UInt8(0xFF), count: 10) + [0x01]
        #expect(throws: ProtobufError.malformedVarint) { try ProbeMessages.StatusResponse(decoding: overlong) }
    }

    @Test func grpcFramingIsFlagLengthMessage() {
        #expect(GRPCFrame.encode([7, 8]) == [0, 0, 0, 0, 2, 7, 8])
        #expect(GRPCFrame.decodeSingle([0, 0, 0, 0, 2, 7, 8]) == [7, 8])
        #expect(GRPCFrame.decodeSingle([1, 0, 0, 0, 2, 7, 8]) == nil)  // compressed flag
        #expect(GRPCFrame.decodeSingle([0, 0, 0, 0, 2, 7]) == nil)  // short
        #expect(GRPCFrame.decodeSingle([0, 0, 0, 0, 1, 7, 8]) == nil)  // trailing
    }

    @Test func trailerLinesSetStatusAndMessage() {
        let state = CallState()
        state.header("HTTP/2 200 \r\n")
        state.header("grpc-status: 14\r\n")
        state.header("Grpc-Message: broker not ready\r\n")
        #expect(state.grpcStatus == 14)
        #expect(state.grpcMessage == "broker not ready")
    }
}
