import KMSCore
import KMSRuntime

/// A failed Vault call, classified. `reason` is short and safe to log or show in healthz: it is
/// built from the status code and the matched class, never from Vault's error text or a body.
public struct VaultCallError: Error, Equatable, CustomStringConvertible {
    public var code: BrokerErrorCode
    /// HTTP status, or 0 for a transport failure.
    public var status: Int
    public var reason: String
    /// A 403 that says the token itself is invalid or expired (log in again and retry once).
    public var invalidToken: Bool

    public init(code: BrokerErrorCode, status: Int, reason: String, invalidToken: Bool = false) {
        self.code = code
        self.status = status
        self.reason = reason
        self.invalidToken = invalidToken
    }

    public var description: String { reason }

    /// Worth one retry inside the deadline: the connection broke, or Vault had a transient 5xx.
    public var isRetryable: Bool {
        code == .unavailable && (reason == VaultTransportError.connectionReset.description || status >= 500)
    }
}

/// Maps Vault outcomes to `BrokerErrorCode`, by status code and a few stable substrings only
/// (error wording differs between Vault, Community Edition and OpenBao versions).
public enum VaultErrorClassifier {
    /// nil for a 2xx answer; else the classified failure.
    public static func classify(_ response: VaultResponse) -> VaultCallError? {
        if let transport = response.transportError {
            switch transport {
            case .timedOut:
                return VaultCallError(code: .deadlineExceeded, status: 0, reason: "vault request timed out")
            case .cancelled:
                return VaultCallError(code: .unavailable, status: 0, reason: "vault request cancelled")
            default:
                return VaultCallError(code: .unavailable, status: 0, reason: transport.description)
            }
        }
        if (200...299).contains(response.status) { return nil }
        let errors = VaultJSON.errors(in: response.body).map { $0.lowercased() }
        return classify(status: response.status, errors: errors)
    }

    /// The reason (and healthz) for a standby's redirect.
    public static let standbyReason = "vault standby redirect"

    /// `errors` are Vault's messages, lower-cased.
    static func classify(status: Int, errors: [String]) -> VaultCallError {
        func says(_ fragment: String) -> Bool { errors.contains { $0.contains(fragment) } }
        switch status {
        case 429:
            return VaultCallError(code: .throttled, status: status, reason: "vault rate limit (429)")
        case 503 where says("sealed"):
            return VaultCallError(code: .sealed, status: status, reason: "vault sealed")
        case 403:
            return VaultCallError(
                code: .permissionDenied, status: status, reason: "permission denied",
                invalidToken: says("invalid token") || says("token expired") || says("bad token"))
        case 400 where says("disallowed by policy") || says("too old"):
            return VaultCallError(code: .versionTooOld, status: status, reason: "ciphertext version too old")
        case 400 where says("encryption key not found"):
            return VaultCallError(code: .keyMissing, status: status, reason: "key missing")
        case 400 where says("message authentication failed") || says("invalid ciphertext"):
            return VaultCallError(code: .decryptFailed, status: status, reason: "ciphertext rejected by vault")
        case 400 where says("invalid role or secret id"):
            return VaultCallError(code: .permissionDenied, status: status, reason: "invalid role or secret ID")
        case 404:
            return VaultCallError(code: .keyMissing, status: status, reason: "not found (404)")
        case 500...599:
            return VaultCallError(code: .unavailable, status: status, reason: "vault error \(status)")
        case 307, 308:
            // A standby node without request forwarding. Redirects are not followed: the token
            // would go to a host nobody configured.
            return VaultCallError(code: .unavailable, status: status, reason: Self.standbyReason)
        default:
            return VaultCallError(code: .internalError, status: status, reason: "unexpected vault answer \(status)")
        }
    }
}
