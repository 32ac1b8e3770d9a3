import KMSRuntime
import Logging
import VaultClient

/// Token revocation at shutdown: a broker that stops for good leaves no live token behind in
/// Vault (`POST /v1/auth/token/revoke-self`). Best effort and bounded: a failure is logged,
/// never retried, and shutdown continues.
extension BrokerService {
    /// At most this long for the revoke call.
    static let revokeTimeoutMillis = 2_000

    /// Revokes the current token, if there is one, then calls `completion` (always, once).
    func revokeToken(completion: @escaping () -> Void) {
        guard let token = tokens.currentToken else {
            completion()
            return
        }
        let request = VaultRequest(
            method: .post, path: "auth/token/revoke-self", token: token,
            namespace: configuration.effectiveAuthNamespace,
            timeoutMillis: min(configuration.requestTimeoutMillis, Self.revokeTimeoutMillis))
        transport.send(request) { [logger] response in
            if response.isSuccess {
                logger.info("broker.token.revoked")
            } else {
                logger.warning(
                    "broker.token.revoke_failed",
                    metadata: [
                        "status": "\(response.status)",
                        "reason": "\(response.transportError?.description ?? "vault refused")",
                    ])
            }
            completion()
        }
    }
}
