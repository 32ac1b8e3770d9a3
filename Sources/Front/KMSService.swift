import KMSCore
import KMSv2API
import SwiftProtobuf

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// The three methods of `v2.KeyManagementService` (k8s.io/kms v2 api.proto).
public enum KMSMethod: String, Sendable, CaseIterable {
    case status = "Status"
    case encrypt = "Encrypt"
    case decrypt = "Decrypt"

    public static let servicePrefix = "/v2.KeyManagementService/"

    /// The method for a `:path`, or nil for any other path (answered with UNIMPLEMENTED).
    public init?(path: String) {
        guard path.hasPrefix(Self.servicePrefix) else { return nil }
        self.init(rawValue: String(path.dropFirst(Self.servicePrefix.count)))
    }

    public var path: String { Self.servicePrefix + rawValue }
}

/// One broker request built from a validated gRPC request.
public struct BrokerCall: Equatable, Sendable {
    public var request: BrokerRequest
    /// The request's uid, for the call log line (empty for Status).
    public var uid: String
}

/// Translates between the KMS v2 protobuf messages and broker protocol v1. Pure functions: the
/// front validates every request here (cheaply; the broker validates again) and never contacts
/// the broker for a request that breaks a limit.
public enum KMSService {
    /// `StatusResponse.version`: the only value current kube-apiservers accept besides v2beta1.
    public static let protocolVersion = "v2"

    private static var decodingOptions: BinaryDecodingOptions {
        var options = BinaryDecodingOptions()
        options.discardUnknownFields = true
        return options
    }

    /// Parses and validates one request message and builds the broker request for it.
    /// `deadlineMillis` is what is left of the gRPC deadline (0: none given).
    public static func brokerCall(
        for method: KMSMethod, message: [UInt8], deadlineMillis: UInt32
    ) throws(GRPCStatus) -> BrokerCall {
        switch method {
        case .status:
            _ = try decode(V2_StatusRequest.self, message)
            return BrokerCall(request: .status, uid: "")
        case .encrypt:
            let request = try decode(V2_EncryptRequest.self, message)
            try validate(request)
            let forwarded = EncryptRequest(
                deadlineMillis: deadlineMillis, uid: request.uid, plaintext: Array(request.plaintext))
            return BrokerCall(request: .encrypt(forwarded), uid: request.uid)
        case .decrypt:
            let request = try decode(V2_DecryptRequest.self, message)
            try validate(request)
            let forwarded = DecryptRequest(
                deadlineMillis: deadlineMillis, uid: request.uid, keyID: request.keyID,
                ciphertext: Array(request.ciphertext))
            return BrokerCall(request: .decrypt(forwarded), uid: request.uid)
        }
    }

    /// The limits of an Encrypt request (Limits names where each number comes from).
    public static func validate(_ request: V2_EncryptRequest) throws(GRPCStatus) {
        guard !request.plaintext.isEmpty else { throw GRPCStatus(.invalidArgument, "plaintext is empty") }
        guard request.plaintext.count <= Limits.maxPlaintextBytes else {
            throw GRPCStatus(.invalidArgument, "plaintext too large")
        }
        guard request.uid.utf8.count <= Limits.maxUIDBytes else { throw GRPCStatus(.invalidArgument, "uid too long") }
    }

    /// The limits of a Decrypt request.
    public static func validate(_ request: V2_DecryptRequest) throws(GRPCStatus) {
        guard !request.ciphertext.isEmpty else { throw GRPCStatus(.invalidArgument, "ciphertext is empty") }
        guard request.ciphertext.count <= Limits.maxCiphertextBytes else {
            throw GRPCStatus(.invalidArgument, "ciphertext too large")
        }
        guard !request.keyID.isEmpty else { throw GRPCStatus(.invalidArgument, "key_id is empty") }
        guard request.keyID.utf8.count <= Limits.maxKeyIDBytes else {
            throw GRPCStatus(.invalidArgument, "key_id too long")
        }
        guard request.uid.utf8.count <= Limits.maxUIDBytes else { throw GRPCStatus(.invalidArgument, "uid too long") }
        var annotationBytes = 0
        for (key, value) in request.annotations { annotationBytes += key.utf8.count + value.count }
        guard annotationBytes <= Limits.maxAnnotationsBytes else {
            throw GRPCStatus(.invalidArgument, "annotations too large")
        }
    }

    /// Turns a broker answer (decoded and checked against its request by BrokerClient) into the
    /// serialized response message, or the gRPC status to answer with.
    public static func response(to answer: BrokerAnswer) -> Result<[UInt8], GRPCStatus> {
        switch answer {
        case .status(let answer):
            var response = V2_StatusResponse()
            response.version = protocolVersion
            if answer.code == .ok {
                response.healthz = answer.healthz
                response.keyID = answer.keyID
            } else {
                // Status reports health; a failing broker is a reason, not a call failure.
                response.healthz = "broker: \(answer.code)"
            }
            return serialize(response)
        case .encrypt(let answer):
            guard answer.code == .ok else { return .failure(GRPCStatus(brokerCode: answer.code)) }
            var response = V2_EncryptResponse()
            response.ciphertext = Data(answer.ciphertext)
            response.keyID = answer.keyID
            return serialize(response)
        case .decrypt(let answer):
            guard answer.code == .ok else { return .failure(GRPCStatus(brokerCode: answer.code)) }
            var response = V2_DecryptResponse()
            response.plaintext = Data(answer.plaintext)
            return serialize(response)
        case .hello, .metrics, .heartbeat:
            // Not the answer to a KMS method's request; BrokerClient never delivers one here.
            return .failure(GRPCStatus(.internal, "broker answer of the wrong type"))
        }
    }

    private static func decode<M: SwiftProtobuf.Message>(_ type: M.Type, _ bytes: [UInt8]) throws(GRPCStatus) -> M {
        do {
            return try M(serializedBytes: bytes, options: decodingOptions)
        } catch {
            throw GRPCStatus(.internal, "cannot parse request message")
        }
    }

    private static func serialize<M: SwiftProtobuf.Message>(_ message: M) -> Result<[UInt8], GRPCStatus> {
        do {
            let bytes: [UInt8] = try message.serializedBytes()
            return .success(bytes)
        } catch {
            return .failure(GRPCStatus(.internal, "cannot serialize response"))
        }
    }
}
