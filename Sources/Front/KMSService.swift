import KMSCore

/// The three methods of `v2.KeyManagementService` (k8s.io/kms v2 api.proto).
public enum KMSMethod: String, Sendable, CaseIterable {
    case status = "Status"
    case encrypt = "Encrypt"
    case decrypt = "Decrypt"

    public static let servicePrefix = "/v2.KeyManagementService/"

    /// The method for a `:path`, or nil for any other path (answered with UNIMPLEMENTED).
    public init?(path: String) {
        switch path {
        case Self.statusPath: self = .status
        case Self.encryptPath: self = .encrypt
        case Self.decryptPath: self = .decrypt
        default: return nil
        }
    }

    public var path: String {
        switch self {
        case .status: Self.statusPath
        case .encrypt: Self.encryptPath
        case .decrypt: Self.decryptPath
        }
    }

    static let statusPath = "/v2.KeyManagementService/Status"
    static let encryptPath = "/v2.KeyManagementService/Encrypt"
    static let decryptPath = "/v2.KeyManagementService/Decrypt"

    /// The path of one of the three methods as its static string (a `:path` header without a
    /// String made for it), or nil for any other bytes.
    static func knownPath(_ bytes: UnsafeBufferPointer<UInt8>) -> String? {
        for path in [encryptPath, decryptPath, statusPath] where HTTP2HeaderName.equal(bytes, path) { return path }
        return nil
    }
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

    /// Parses and validates one request message and builds the broker request for it.
    /// `deadlineMillis` is what is left of the gRPC deadline (0: none given).
    public static func brokerCall(
        for method: KMSMethod, message: [UInt8], deadlineMillis: UInt32
    ) throws(GRPCStatus) -> BrokerCall {
        switch method {
        case .status:
            try decode { () throws(ProtobufDecodingError) in try KMSv2Messages.validateStatusRequest(message) }
            return BrokerCall(request: .status, uid: "")
        case .encrypt:
            let request = try decode { () throws(ProtobufDecodingError) in
                try KMSv2Messages.EncryptRequest(decoding: message)
            }
            try validate(request)
            let forwarded = EncryptRequest(
                deadlineMillis: deadlineMillis, uid: request.uid, plaintext: request.plaintext)
            return BrokerCall(request: .encrypt(forwarded), uid: request.uid)
        case .decrypt:
            let request = try decode { () throws(ProtobufDecodingError) in
                try KMSv2Messages.DecryptRequest(decoding: message)
            }
            try validate(request)
            let forwarded = DecryptRequest(
                deadlineMillis: deadlineMillis, uid: request.uid, keyID: request.keyID, ciphertext: request.ciphertext)
            return BrokerCall(request: .decrypt(forwarded), uid: request.uid)
        }
    }

    /// The limits of an Encrypt request (Limits names where each number comes from).
    public static func validate(_ request: KMSv2Messages.EncryptRequest) throws(GRPCStatus) {
        guard !request.plaintext.isEmpty else { throw GRPCStatus(.invalidArgument, "plaintext is empty") }
        guard request.plaintext.count <= Limits.maxPlaintextBytes else {
            throw GRPCStatus(.invalidArgument, "plaintext too large")
        }
        guard request.uid.utf8.count <= Limits.maxUIDBytes else { throw GRPCStatus(.invalidArgument, "uid too long") }
    }

    /// The limits of a Decrypt request.
    public static func validate(_ request: KMSv2Messages.DecryptRequest) throws(GRPCStatus) {
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
            // Status reports health; a failing broker is a reason, not a call failure.
            let ok = answer.code == .ok
            return .success(
                KMSv2Messages.statusResponse(
                    version: protocolVersion, healthz: ok ? answer.healthz : "broker: \(answer.code)",
                    keyID: ok ? answer.keyID : ""))
        case .encrypt(let answer):
            guard answer.code == .ok else { return .failure(GRPCStatus(brokerCode: answer.code)) }
            return .success(KMSv2Messages.encryptResponse(ciphertext: answer.ciphertext, keyID: answer.keyID))
        case .decrypt(let answer):
            guard answer.code == .ok else { return .failure(GRPCStatus(brokerCode: answer.code)) }
            return .success(KMSv2Messages.decryptResponse(plaintext: answer.plaintext))
        case .hello, .metrics, .heartbeat:
            // Not the answer to a KMS method's request; BrokerClient never delivers one here.
            return .failure(GRPCStatus(.internal, "broker answer of the wrong type"))
        }
    }

    private static func decode<M>(_ body: () throws(ProtobufDecodingError) -> M) throws(GRPCStatus) -> M {
        do {
            return try body()
        } catch {
            throw GRPCStatus(.internal, "cannot parse request message")
        }
    }
}
