import KMSCore

/// A gRPC status: a code from the fixed gRPC table and a short, fixed message.
///
/// Every status the front sends is built here, and every broker error code is mapped to a gRPC
/// code in exactly one place (`init(brokerCode:)`). Messages are constant texts chosen by the
/// front: nothing that came from Vault or from the client is ever echoed back.
public struct GRPCStatus: Error, Equatable, Sendable, CustomStringConvertible {
    /// The gRPC status codes (grpc/doc/statuscodes.md).
    public enum Code: UInt8, Sendable, CaseIterable {
        case ok = 0
        case cancelled = 1
        case unknown = 2
        case invalidArgument = 3
        case deadlineExceeded = 4
        case notFound = 5
        case alreadyExists = 6
        case permissionDenied = 7
        case resourceExhausted = 8
        case failedPrecondition = 9
        case aborted = 10
        case outOfRange = 11
        case unimplemented = 12
        case `internal` = 13
        case unavailable = 14
        case dataLoss = 15
        case unauthenticated = 16
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public static let ok = GRPCStatus(.ok, "")

    /// The one mapping from broker answer codes to gRPC statuses.
    public init(brokerCode: BrokerErrorCode) {
        switch brokerCode {
        case .ok: self.init(.ok, "")
        case .invalidRequest: self.init(.invalidArgument, "request rejected by broker")
        case .decryptFailed: self.init(.invalidArgument, "ciphertext could not be decrypted")
        case .permissionDenied: self.init(.permissionDenied, "vault denied the request")
        case .throttled: self.init(.resourceExhausted, "vault rate limit reached")
        case .tooManyRequests: self.init(.resourceExhausted, "too many requests in flight")
        case .unavailable: self.init(.unavailable, "vault unavailable")
        case .sealed: self.init(.unavailable, "vault sealed")
        case .notReady: self.init(.unavailable, "broker not ready")
        case .deadlineExceeded: self.init(.deadlineExceeded, "deadline exceeded at broker")
        case .unknownKeyID: self.init(.failedPrecondition, "unknown key_id")
        case .versionTooOld: self.init(.failedPrecondition, "key version below min_decryption_version")
        case .keyMissing: self.init(.failedPrecondition, "transit key missing")
        case .internalError: self.init(.internal, "broker internal error")
        }
    }

    public var description: String { "\(code.rawValue) \(message)" }

    /// The `grpc-message` header value: percent-encoded as the gRPC HTTP/2 spec requires (every
    /// byte outside 0x20-0x7E, and `%` itself, becomes `%XX` with upper-case hex digits).
    public var encodedMessage: String { Self.percentEncode(message) }

    /// Percent-encodes a grpc-message value (gRPC over HTTP/2, "Responses": Status-Message).
    public static func percentEncode(_ text: String) -> String {
        let hex: [UInt8] = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            if byte >= 0x20 && byte <= 0x7E && byte != 0x25 {
                out.append(byte)
            } else {
                out.append(0x25)
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0x0F)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
