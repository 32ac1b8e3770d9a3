import KMSCore
import KMSRuntime

/// A failed Vault call, classified. `reason` is short and safe to log or show in healthz: it is
/// built from the status code and the matched class, never from Vault's error text or a body.
public struct VaultCallError: Error, Equatable, CustomStringConvertible {
    /// What went wrong, for callers that branch on it (retry, healthz wording); `reason` is only
    /// ever shown, never compared.
    public enum Cause: Equatable, Sendable {
        /// No HTTP status came back.
        case transport(VaultTransportError)
        /// Vault answered with a non-2xx status (classified by `code`).
        case status
        /// A standby's 307/308 (redirects are never followed).
        case standbyRedirect
        /// A 2xx answer the broker could not use (malformed, or not what was asked for).
        case unusableAnswer
        /// Nothing was sent: no token yet, or the deadline had already passed.
        case notSent
    }

    public var code: BrokerErrorCode
    /// HTTP status, or 0 for a transport failure.
    public var status: Int
    public var reason: String
    public var cause: Cause
    /// A 403 that says the token itself is invalid or expired (log in again and retry once).
    public var invalidToken: Bool

    public init(code: BrokerErrorCode, status: Int, reason: String, cause: Cause, invalidToken: Bool = false) {
        self.code = code
        self.status = status
        self.reason = reason
        self.cause = cause
        self.invalidToken = invalidToken
    }

    public var description: String { reason }

    /// Worth one retry inside the deadline: the connection broke, or Vault had a transient 5xx.
    public var isRetryable: Bool {
        code == .unavailable && (cause == .transport(.connectionReset) || (cause == .status && status >= 500))
    }

    /// The TLS handshake or certificate verification failed.
    public var isTLSFailure: Bool { cause == .transport(.tls) }
}

/// Maps Vault outcomes to `BrokerErrorCode`, by status code and a few stable substrings only
/// (error wording differs between Vault, Community Edition and OpenBao versions).
public enum VaultErrorClassifier {
    /// nil for a 2xx answer; else the classified failure. The response was classified once,
    /// when it was made (`VaultResponse.failure`); this only reads that.
    public static func classify(_ response: VaultResponse) -> VaultCallError? { response.failure }

    /// The one classification of an outcome, run by `VaultResponse.init`.
    static func classify(status: Int, body: WipedBuffer, transportError: VaultTransportError?) -> VaultCallError? {
        if let transport = transportError {
            let cause = VaultCallError.Cause.transport(transport)
            switch transport {
            case .timedOut:
                return VaultCallError(
                    code: .deadlineExceeded, status: 0, reason: "vault request timed out", cause: cause)
            case .cancelled:
                return VaultCallError(code: .unavailable, status: 0, reason: "vault request cancelled", cause: cause)
            default:
                return VaultCallError(code: .unavailable, status: 0, reason: transport.description, cause: cause)
            }
        }
        if (200...299).contains(status) { return nil }
        let errors = VaultJSON.errors(in: body).map { $0.lowercased() }
        return classify(status: status, errors: errors)
    }

    /// The reason (and healthz) for a standby's redirect.
    public static let standbyReason = "vault standby redirect"

    /// `errors` are Vault's messages, lower-cased.
    static func classify(status: Int, errors: [String]) -> VaultCallError {
        func says(_ fragment: String) -> Bool { errors.contains { $0.contains(fragment) } }
        switch status {
        case 429:
            return VaultCallError(code: .throttled, status: status, reason: "vault rate limit (429)", cause: .status)
        case 503 where says("sealed"):
            return VaultCallError(code: .sealed, status: status, reason: "vault sealed", cause: .status)
        case 403:
            return VaultCallError(
                code: .permissionDenied, status: status, reason: "permission denied", cause: .status,
                invalidToken: says("invalid token") || says("token expired") || says("bad token"))
        case 400 where says("disallowed by policy") || says("too old"):
            return VaultCallError(
                code: .versionTooOld, status: status, reason: "ciphertext version too old", cause: .status)
        case 400 where says("encryption key not found"):
            return VaultCallError(code: .keyMissing, status: status, reason: "key missing", cause: .status)
        case 400 where says("message authentication failed") || says("invalid ciphertext"):
            return VaultCallError(
                code: .decryptFailed, status: status, reason: "ciphertext rejected by vault", cause: .status)
        case 400 where says("invalid role or secret id"):
            return VaultCallError(
                code: .permissionDenied, status: status, reason: "invalid role or secret ID", cause: .status)
        case 404:
            return VaultCallError(code: .keyMissing, status: status, reason: "not found (404)", cause: .status)
        case 500...599:
            return VaultCallError(code: .unavailable, status: status, reason: "vault error \(status)", cause: .status)
        case 307, 308:
            // A standby node without request forwarding. Redirects are not followed: the token
            // would go to a host nobody configured.
            return VaultCallError(
                code: .unavailable, status: status, reason: Self.standbyReason, cause: .standbyRedirect)
        default:
            return VaultCallError(
                code: .internalError, status: status, reason: "unexpected vault answer \(status)", cause: .status)
        }
    }
}
