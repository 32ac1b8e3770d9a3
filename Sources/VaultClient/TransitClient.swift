import KMSCore
import KMSRuntime
import Logging

/// Transit calls for the one configured key: read metadata, encrypt with an explicit version,
/// decrypt. Every call is capped by an absolute deadline; one retry on a broken connection or a
/// 5xx if time remains, and one fresh login when Vault says the token is invalid. With several
/// Vault addresses the transport's failover to the next address is that one retry
/// (`VaultTransport.failsOverToAnotherAddress`): nothing is retried on top of it.
public final class TransitClient {
    /// A retry is pointless with less time than this left.
    static let minimumRetryMillis: Int64 = 50

    public let keyPath: TransitKeyPath
    private let loop: EventLoop
    private let transport: any VaultTransport
    private let tokens: any VaultTokenSource
    private let namespace: String?

    /// A client for one key; `tokens` supplies the token (the broker's `TokenLifecycle`, or a
    /// `StaticTokenSource` for one-shot tools like preflight).
    public init(
        keyPath: TransitKeyPath, namespace: String?, loop: EventLoop, transport: any VaultTransport,
        tokens: any VaultTokenSource
    ) {
        self.keyPath = keyPath
        self.namespace = namespace
        self.loop = loop
        self.transport = transport
        self.tokens = tokens
    }

    public var keyMetadataPath: String { "\(keyPath.mount)/keys/\(keyPath.keyName)" }
    public var encryptPath: String { "\(keyPath.mount)/encrypt/\(keyPath.keyName)" }
    public var decryptPath: String { "\(keyPath.mount)/decrypt/\(keyPath.keyName)" }

    /// Reads and reduces the key metadata.
    public func readKey(deadlineMillis: Int64, completion: @escaping (Result<KeyMetadata, VaultCallError>) -> Void) {
        call(
            deadlineMillis: deadlineMillis, correlationID: nil,
            build: { token, timeout in
                VaultRequest(
                    method: .get, path: self.keyMetadataPath, operation: .readKey, token: token,
                    namespace: self.namespace,
                    timeoutMillis: timeout)
            }
        ) { result in
            completion(
                result.flatMap { response in
                    guard let decoded = VaultJSON.decode(VaultJSON.KeyResponse.self, from: response.body),
                        let metadata = KeyMetadata(decoded)
                    else { return .failure(Self.malformed(response, "key metadata")) }
                    return .success(metadata)
                })
        }
    }

    /// Encrypts with `version` named explicitly; the answer must come from that version.
    public func encrypt(
        plaintext: [UInt8], version: UInt32, uid: String, deadlineMillis: Int64,
        completion: @escaping (Result<[UInt8], VaultCallError>) -> Void
    ) {
        call(
            deadlineMillis: deadlineMillis, correlationID: uid,
            build: { token, timeout in
                var body = JSONBodyBuilder(capacity: 64 + plaintext.count * 2)
                body.base64("plaintext", plaintext)
                body.integer("key_version", Int64(version))
                return VaultRequest(
                    method: .post, path: self.encryptPath, operation: .encrypt, body: body.finish(),
                    token: token, namespace: self.namespace, correlationID: uid, timeoutMillis: timeout)
            }
        ) { result in
            completion(
                result.flatMap { response in
                    guard let decoded = VaultJSON.decode(VaultJSON.EncryptResponse.self, from: response.body) else {
                        return .failure(Self.malformed(response, "encrypt answer"))
                    }
                    guard decoded.data.key_version == Int64(version) else {
                        return .failure(
                            VaultCallError(
                                code: .internalError, status: response.status,
                                reason:
                                    "vault encrypted with version \(decoded.data.key_version), not the requested \(version)",
                                cause: .unusableAnswer))
                    }
                    let ciphertext = decoded.data.ciphertext
                    guard VaultCiphertextPrefix(parsing: ciphertext)?.version == version,
                        ciphertext.count <= Limits.maxCiphertextBytes
                    else { return .failure(Self.malformed(response, "encrypt ciphertext")) }
                    return .success(ciphertext)
                })
        }
    }

    /// Decrypts a `vault:vN:<base64>` ciphertext the caller has already checked.
    public func decrypt(
        ciphertext: [UInt8], uid: String, deadlineMillis: Int64,
        completion: @escaping (Result<[UInt8], VaultCallError>) -> Void
    ) {
        let text = String(decoding: ciphertext, as: UTF8.self)
        call(
            deadlineMillis: deadlineMillis, correlationID: uid,
            build: { token, timeout in
                var body = JSONBodyBuilder(capacity: 32 + ciphertext.count)
                body.string("ciphertext", text)
                return VaultRequest(
                    method: .post, path: self.decryptPath, operation: .decrypt, body: body.finish(),
                    token: token, namespace: self.namespace, correlationID: uid, timeoutMillis: timeout)
            }
        ) { result in
            completion(
                result.flatMap { response in
                    // data.plaintext goes from the body to a wiped buffer, never through a String.
                    guard
                        case .success(let plaintext) = SecretJSONField.base64(
                            at: ["data", "plaintext"], in: response.body, maxDecodedBytes: Limits.maxPlaintextBytes)
                    else { return .failure(Self.malformed(response, "decrypt answer")) }
                    return .success(plaintext.withUnsafeBytes { Array($0) })
                })
        }
    }

    // MARK: the call with deadline, retry and re-login

    private struct Attempt {
        var retried = false
        var reloggedIn = false
    }

    /// Vault says "invalid token"; OpenBao answers a revoked or expired token with a bare 403,
    /// which the token source checks (lookup-self) before a fresh login.
    private func tokenMayBeDead(_ error: VaultCallError, _ attempt: Attempt) -> Bool {
        !attempt.reloggedIn && error.code == .permissionDenied && error.status == 403
    }

    private func call(
        deadlineMillis: Int64, correlationID: String?, attempt: Attempt = Attempt(),
        build: @escaping (SecretBytes, Int) -> VaultRequest,
        completion: @escaping (Result<VaultResponse, VaultCallError>) -> Void
    ) {
        guard let token = tokens.currentToken else {
            let error = VaultCallError(code: .notReady, status: 0, reason: "not logged in", cause: .notSent)
            loop.schedule(afterMillis: 0) { completion(.failure(error)) }
            return
        }
        let remaining = deadlineMillis - EventLoop.nowMillis()
        guard remaining > 0 else {
            let error = VaultCallError(
                code: .deadlineExceeded, status: 0, reason: "deadline passed before the vault call", cause: .notSent)
            loop.schedule(afterMillis: 0) { completion(.failure(error)) }
            return
        }
        transport.send(build(token, Int(remaining))) { [weak self] response in
            guard let self else { return }
            guard let error = response.failure else { return completion(.success(response)) }
            let timeLeft = deadlineMillis - EventLoop.nowMillis()
            let logInAgainAndRetry = {
                self.tokens.replaceInvalidToken(token) { renewed in
                    guard renewed else { return completion(.failure(error)) }
                    var next = attempt
                    next.reloggedIn = true
                    self.call(
                        deadlineMillis: deadlineMillis, correlationID: correlationID, attempt: next, build: build,
                        completion: completion)
                }
            }
            if error.invalidToken && !attempt.reloggedIn {
                logInAgainAndRetry()
            } else if self.tokenMayBeDead(error, attempt) {
                self.tokens.tokenIsAlive(token) { alive in
                    if alive { completion(.failure(error)) } else { logInAgainAndRetry() }
                }
            } else if error.isRetryable && !attempt.retried && !self.transport.failsOverToAnotherAddress
                && timeLeft > Self.minimumRetryMillis
            {
                var next = attempt
                next.retried = true
                self.call(
                    deadlineMillis: deadlineMillis, correlationID: correlationID, attempt: next, build: build,
                    completion: completion)
            } else {
                completion(.failure(error))
            }
        }
    }

    private static func malformed(_ response: VaultResponse, _ what: String) -> VaultCallError {
        VaultCallError(
            code: .internalError, status: response.status, reason: "malformed \(what) from vault",
            cause: .unusableAnswer)
    }
}
