import KMSCore
import KMSRuntime

/// A Vault token with its lease, as returned by login or renew-self.
public struct VaultToken {
    /// Vault tokens are short opaque ASCII strings (`hvs.` + base62, or a legacy UUID); 4 KiB
    /// bounds what the broker stores and sends in a header.
    static let maxBytes = 4096
    /// Leases are clamped to this (100 years) so that the millisecond arithmetic on them can never
    /// overflow, whatever `lease_duration` Vault (or something posing as it) sends.
    static let maxLeaseSeconds: Int64 = 100 * 365 * 86_400

    public let secret: SecretBytes
    /// 0 means the token does not expire (e.g. a root token in tests).
    public let leaseSeconds: Int64
    public let renewable: Bool

    /// Reads the `auth` block of a login or renew-self answer, in one pass over the body. The
    /// token goes straight into `SecretBytes`; it must be printable ASCII without spaces, since it
    /// is sent as a header.
    public static func parse(_ response: VaultResponse) -> Result<VaultToken, VaultCallError> {
        if let error = response.failure { return .failure(error) }
        enum Problem: Error { case auth, token }
        let read = JSONDocument.read(response.body) {
            root throws(JSONDocument.Failure) -> Result<VaultToken, Problem> in
            guard let auth = try? VaultJSON.AuthResponse(root).auth else { return .failure(.auth) }
            // The strict field reader: a duplicate, non-string or overlong token is refused.
            guard let field = try? SecretJSONField.find(["auth", "client_token"], in: root),
                let secret = try? field.secret(maxBytes: maxBytes), !secret.isEmpty,
                secret.withUnsafeBytes({ $0.allSatisfy { (0x21...0x7E).contains($0) } })
            else { return .failure(.token) }
            return .success(
                VaultToken(
                    secret: secret, leaseSeconds: min(max(0, auth.lease_duration), maxLeaseSeconds),
                    renewable: auth.renewable))
        }
        switch read {
        case .success(.success(let token)):
            return .success(token)
        case .success(.failure(.token)):
            return .failure(
                VaultCallError(
                    code: .internalError, status: response.status, reason: "vault returned a malformed token",
                    cause: .unusableAnswer))
        case .success(.failure(.auth)), .failure:
            return .failure(
                VaultCallError(
                    code: .internalError, status: response.status, reason: "auth block missing in vault answer",
                    cause: .unusableAnswer))
        }
    }
}

/// `POST auth/<mount>/login` with the role ID and the secret ID (re-read from its file by the
/// caller at every login). No token is sent.
public struct AppRoleLogin {
    public let authMount: String
    public let roleID: String
    public let namespace: String?

    public init(authMount: String, roleID: String, namespace: String?) {
        self.authMount = authMount
        self.roleID = roleID
        self.namespace = namespace
    }

    /// The login request; `secretID` is copied into a wiped body.
    public func request(secretID: SecretBytes, timeoutMillis: Int) -> VaultRequest {
        var body = JSONBodyBuilder(capacity: 64 + roleID.utf8.count + secretID.count * 6)
        body.string("role_id", roleID)
        body.secret("secret_id", secretID)
        return VaultRequest(
            method: .post, path: "auth/\(authMount)/login", operation: .login, body: body.finish(),
            namespace: namespace,
            timeoutMillis: timeoutMillis)
    }

    /// `GET auth/token/lookup-self` with the current token (the default policy allows it): 403
    /// means the token is dead.
    public func lookupSelfRequest(token: SecretBytes, timeoutMillis: Int) -> VaultRequest {
        VaultRequest(
            method: .get, path: "auth/token/lookup-self", token: token, namespace: namespace,
            timeoutMillis: timeoutMillis)
    }

    /// `POST auth/token/renew-self` with the current token.
    public func renewRequest(token: SecretBytes, timeoutMillis: Int) -> VaultRequest {
        VaultRequest(
            method: .post, path: "auth/token/renew-self", operation: .renew, token: token, namespace: namespace,
            timeoutMillis: timeoutMillis)
    }
}
