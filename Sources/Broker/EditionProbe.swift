import KMSRuntime
import Logging
import VaultClient

/// Reads `sys/license/status` once after the first login and logs the edition: 200 is Vault
/// Enterprise, 404 `enterprise-only feature` Community Edition, 404 `unsupported path` OpenBao,
/// 403 means the policy does not allow the read (fine). Community and OpenBao are supported;
/// only `--require-enterprise` turns a non-Enterprise answer into an unhealthy broker.
final class EditionProbe {
    enum Edition: String, Sendable {
        case unknown, enterprise, community, openbao
    }

    private let transport: any VaultTransport
    private let tokens: TokenLifecycle
    private let namespace: String?
    private let requireEnterprise: Bool
    private let requestTimeoutMillis: Int
    private let logger: Logger
    private(set) var edition: Edition = .unknown
    private var known = false
    private var asking = false

    init(
        transport: any VaultTransport, tokens: TokenLifecycle, namespace: String?, requireEnterprise: Bool,
        requestTimeoutMillis: Int, logger: Logger
    ) {
        self.transport = transport
        self.tokens = tokens
        self.namespace = namespace
        self.requireEnterprise = requireEnterprise
        self.requestTimeoutMillis = requestTimeoutMillis
        self.logger = logger
    }

    /// nil unless `--require-enterprise` is set and Vault is known not to be Enterprise.
    var healthReason: String? {
        guard requireEnterprise else { return nil }
        if !known { return "vault edition not known yet" }
        return edition == .enterprise ? nil : "vault is not enterprise (\(edition.rawValue)) and --require-enterprise"
    }

    /// Asks once; asks again after the next login if no answer came.
    func detect() {
        guard !known, !asking, let token = tokens.currentToken else { return }
        asking = true
        let request = VaultRequest(
            method: .get, path: "sys/license/status", operation: .license, token: token, namespace: namespace,
            timeoutMillis: requestTimeoutMillis)
        transport.send(request) { [weak self] response in
            guard let self else { return }
            self.asking = false
            let errors = VaultJSON.errors(in: response.body).joined(separator: " ").lowercased()
            switch response.status {
            case 200: self.edition = .enterprise
            case 404 where errors.contains("enterprise-only"): self.edition = .community
            case 404 where errors.contains("unsupported path"): self.edition = .openbao
            case 403, 404: self.edition = .unknown
            default: return  // unreachable, sealed: ask again after the next login
            }
            self.known = true
            self.logger.info(
                "broker.vault.edition",
                metadata: ["edition": "\(self.edition.rawValue)", "status": "\(response.status)"])
            if let reason = self.healthReason {
                self.logger.error("broker.vault.edition_refused", metadata: ["reason": "\(reason)"])
            }
        }
    }
}
