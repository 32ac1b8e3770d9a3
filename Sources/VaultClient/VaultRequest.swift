import KMSRuntime

/// One HTTP call to Vault, as the transport sees it. Bodies that may carry a secret (the login
/// body with the secret ID, an encrypt body with plaintext) are `WipedBuffer`s.
public struct VaultRequest {
    public enum Method: String, Sendable {
        case get = "GET"
        case post = "POST"
    }

    public var method: Method
    /// The API path after `/v1/`, e.g. `transit/encrypt/kek`. Built only from validated parts.
    public var path: String
    /// What the call is, for statistics; set by whoever builds the request, never parsed back
    /// out of `path`.
    public var operation: VaultOperation
    public var body: WipedBuffer?
    /// Sent as `X-Vault-Token`; nil for login.
    public var token: SecretBytes?
    /// Sent as `X-Vault-Namespace` when set.
    public var namespace: String?
    /// Sent as `X-Correlation-Id` when set (the KMS request uid; Vault audits it unhashed).
    public var correlationID: String?
    /// Whole-request timeout (CURLOPT_TIMEOUT_MS), from the caller's deadline.
    public var timeoutMillis: Int

    public init(
        method: Method, path: String, operation: VaultOperation = .other, body: WipedBuffer? = nil,
        token: SecretBytes? = nil, namespace: String? = nil, correlationID: String? = nil, timeoutMillis: Int
    ) {
        self.method = method
        self.path = path
        self.operation = operation
        self.body = body
        self.token = token
        self.namespace = namespace
        self.correlationID = correlationID
        self.timeoutMillis = timeoutMillis
    }
}

/// Why no HTTP status came back. Classified from libcurl's result code (or scripted in tests).
public enum VaultTransportError: Equatable, Sendable, CustomStringConvertible {
    /// Connection refused, host unreachable, name not resolved.
    case connectFailed
    /// The request's timeout (its deadline) passed.
    case timedOut
    /// The connection broke after it was established (reset, empty reply, send/receive error).
    case connectionReset
    /// TLS handshake or certificate verification failed.
    case tls
    /// The answer was larger than `VaultResponse.maxBodyBytes`.
    case responseTooLarge
    /// The transport was shut down before the request completed.
    case cancelled
    /// Anything else; `detail` is libcurl's static error text (never request data).
    case other(String)

    public var description: String {
        switch self {
        case .connectFailed: "connect failed"
        case .timedOut: "timed out"
        case .connectionReset: "connection reset"
        case .tls: "TLS failure"
        case .responseTooLarge: "response too large"
        case .cancelled: "cancelled"
        case .other(let detail): detail
        }
    }
}

/// What came back: a status code and body, or a transport error (then `status` is 0). Classified
/// once, here, when it is made: every reader (statistics, failover, the Transit client, login)
/// reads `failure` instead of parsing the error body again.
public struct VaultResponse {
    /// Vault's answers for this plugin are small JSON documents; 1 MiB bounds memory if a proxy or
    /// a misconfigured address answers with something else.
    public static let maxBodyBytes = 1 << 20

    public let status: Int
    /// The body, wiped on release: it may hold a token (login) or plaintext (decrypt).
    public let body: WipedBuffer
    public let transportError: VaultTransportError?
    /// nil for a 2xx answer; else the classified failure (`VaultErrorClassifier`).
    public let failure: VaultCallError?

    public init(status: Int, body: WipedBuffer = WipedBuffer(capacity: 0), transportError: VaultTransportError? = nil) {
        self.status = status
        self.body = body
        self.transportError = transportError
        failure = VaultErrorClassifier.classify(status: status, body: body, transportError: transportError)
    }

    public static func failed(_ error: VaultTransportError) -> VaultResponse {
        VaultResponse(status: 0, transportError: error)
    }

    public var isSuccess: Bool { failure == nil }
}
