/// The outcome of a broker request, carried in every answer. It is a small closed enum: the broker
/// never sends Vault's error text to the front. The front maps each code to one gRPC status in one
/// place (`GRPCStatus.init(brokerCode:)`).
public enum BrokerErrorCode: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case ok = 0
    /// The request is malformed or out of limits (user error; retrying cannot help).
    case invalidRequest = 1
    /// Vault refused the broker's token for the configured path.
    case permissionDenied = 2
    /// Vault answered 429 (rate-limit quota).
    case throttled = 3
    /// Vault cannot be reached, or answered 5xx.
    case unavailable = 4
    /// Vault is sealed.
    case sealed = 5
    /// The request's deadline passed before Vault answered.
    case deadlineExceeded = 6
    /// Decrypt named a key_id the broker cannot derive for the ciphertext's key version.
    case unknownKeyID = 7
    /// Vault could not decrypt the ciphertext (authentication failed, malformed).
    case decryptFailed = 8
    /// Too many requests in flight on this front connection.
    case tooManyRequests = 9
    /// The broker is not ready yet (not logged in, key metadata not read).
    case notReady = 10
    /// The ciphertext's key version is below the key's `min_decryption_version`.
    case versionTooOld = 11
    /// The Transit key does not exist.
    case keyMissing = 12
    /// Anything else; details are in the broker's log.
    case internalError = 13

    public var description: String {
        switch self {
        case .ok: "ok"
        case .invalidRequest: "invalid-request"
        case .permissionDenied: "permission-denied"
        case .throttled: "throttled"
        case .unavailable: "unavailable"
        case .sealed: "sealed"
        case .deadlineExceeded: "deadline-exceeded"
        case .unknownKeyID: "unknown-key-id"
        case .decryptFailed: "decrypt-failed"
        case .tooManyRequests: "too-many-requests"
        case .notReady: "not-ready"
        case .versionTooOld: "version-too-old"
        case .keyMissing: "key-missing"
        case .internalError: "internal"
        }
    }
}
