import KMSCore
import KMSRuntime
import Logging
import VaultClient

/// The handlers of the requests `DispatchTable` admits. Each checks the meaning of a request whose shape the
/// table has already checked, answers with a code, and never forwards Vault's text.
extension BrokerService {
    /// Every request the permit table admitted, by its closed type: no `default:`.
    func handle(_ request: BrokerRequest, from connection: FrontConnection, requestID: UInt32) {
        switch request {
        case .hello(let hello): answerHello(connection, requestID, hello)
        case .status: answerStatus(connection, requestID)
        case .heartbeat: answerHeartbeat(connection, requestID)
        case .metrics: answerMetrics(connection, requestID)
        case .encrypt(let encrypt): startEncrypt(connection, requestID, encrypt)
        case .decrypt(let decrypt): startDecrypt(connection, requestID, decrypt)
        }
    }

    func answerHello(_ connection: FrontConnection, _ requestID: UInt32, _ hello: HelloRequest) {
        logger.info(
            "broker.front.hello",
            metadata: ["front_version": "\(hello.frontVersion)", "connection": "\(connection.serial)"])
        let answer = HelloAnswer(
            code: .ok, brokerVersion: Self.softwareVersion, maxInFlight: UInt32(Limits.maxInFlightPerFront))
        connection.answer(requestID, .hello(answer))
        connection.becomeReady()
    }

    /// From the cache only: no Vault call.
    func answerStatus(_ connection: FrontConnection, _ requestID: UInt32) {
        let keyID = keyProbe.cache.activeKeyID?.description ?? ""
        let answer = StatusAnswer(code: .ok, healthz: healthReason, keyID: keyID)
        connection.answer(requestID, .status(answer))
    }

    func answerHeartbeat(_ connection: FrontConnection, _ requestID: UInt32) {
        connection.answer(requestID, .heartbeat(HeartbeatAnswer(code: .ok)))
    }

    /// Encrypts with the active version, named explicitly, and answers that version's key_id.
    func startEncrypt(_ connection: FrontConnection, _ requestID: UInt32, _ request: EncryptRequest) {
        func fail(_ code: BrokerErrorCode) {
            connection.answer(requestID, .encrypt(EncryptAnswer(code: code)))
        }
        // After a rollback the active version may now be another key under the same name.
        guard lifecycle == .running, tokens.currentToken != nil, !keyProbe.cache.rolledBack,
            let version = keyProbe.cache.activeVersion, let keyID = keyProbe.cache.activeKeyID
        else { return fail(.notReady) }
        guard connection.beginVaultRequest() else { return fail(.tooManyRequests) }
        let started = EventLoop.nowNanos()
        transit.encrypt(
            plaintext: request.plaintext, version: version, uid: request.uid,
            deadlineMillis: deadline(request.deadlineMillis)
        ) { [weak self] result in
            connection.endVaultRequest()
            switch result {
            case .success(let ciphertext):
                let answer = EncryptAnswer(code: .ok, ciphertext: ciphertext, keyID: keyID.description)
                connection.answer(requestID, .encrypt(answer))
            case .failure(let error):
                self?.logVaultFailure("encrypt", error, started: started)
                fail(error.code)
            }
        }
    }

    /// Decrypts only when the request's key_id is the one derived for the ciphertext's version,
    /// or, with `--accept-foreign-key-ids`, when the key_id is not of this plugin's scheme at all
    /// and the ciphertext's version is one the cache knows (takeover of another plugin's data).
    /// A key_id of our scheme that does not match is refused in both modes.
    func startDecrypt(_ connection: FrontConnection, _ requestID: UInt32, _ request: DecryptRequest) {
        func fail(_ code: BrokerErrorCode, _ reason: String? = nil) {
            // Anyone who can reach the KMS socket can send refused Decrypts: one line per 10 s.
            if let reason, let suppressed = repetitiveLog.admit("broker.decrypt.refused") {
                logger.info(
                    "broker.decrypt.refused",
                    metadata: [
                        "reason": "\(reason)", "connection": "\(connection.serial)", "suppressed": "\(suppressed)",
                    ])
            }
            connection.answer(requestID, .decrypt(DecryptAnswer(code: code)))
        }
        guard lifecycle == .running, tokens.currentToken != nil else { return fail(.notReady) }
        guard let prefix = VaultCiphertextPrefix(parsing: request.ciphertext),
            let bodyStart = request.ciphertext.indices.dropFirst(VaultCiphertextPrefix.marker.utf8.count)
                .first(where: { request.ciphertext[$0] == UInt8(ascii: ":") }),
            Base64.isStandardBase64(request.ciphertext[(bodyStart + 1)...])
        else { return fail(.invalidRequest, "ciphertext is not vault:v<N>:<base64>") }
        let requested = KeyID(parsing: request.keyID)
        if requested == nil, !configuration.acceptForeignKeyIDs {
            foreignKeyIDRefused &+= 1
            return fail(.unknownKeyID, "key_id is not of this plugin's scheme (takeover mode is off)")
        }
        if let requested, requested.version != prefix.version {
            return fail(.unknownKeyID, "key_id does not name the ciphertext's version")
        }
        guard connection.beginVaultRequest() else { return fail(.tooManyRequests) }
        let deadlineMillis = deadline(request.deadlineMillis)
        checkKnown(version: prefix.version, keyID: requested) { [weak self] known in
            guard let self else { return }
            guard known else {
                connection.endVaultRequest()
                if requested == nil {
                    self.foreignKeyIDRefused &+= 1
                    return fail(.unknownKeyID, "foreign key_id: version \(prefix.version) is not a known version")
                }
                return fail(.unknownKeyID, "key_id not derivable for version \(prefix.version)")
            }
            let started = EventLoop.nowNanos()
            self.transit.decrypt(ciphertext: request.ciphertext, uid: request.uid, deadlineMillis: deadlineMillis) {
                result in
                connection.endVaultRequest()
                switch result {
                case .success(let plaintext):
                    if requested == nil { self.countForeignRead(version: prefix.version) }
                    connection.answer(requestID, .decrypt(DecryptAnswer(code: .ok, plaintext: plaintext)))
                case .failure(let error):
                    self.logVaultFailure("decrypt", error, started: started)
                    fail(error.code)
                }
            }
        }
    }

    /// One read under a foreign key_id: counted always, logged once per version (the counter,
    /// not the log, is what the takeover runbook watches).
    private func countForeignRead(version: UInt32) {
        foreignKeyIDDecrypts &+= 1
        guard foreignVersionsLogged.insert(version).inserted else { return }
        logger.warning(
            "broker.decrypt.foreign_key_id",
            metadata: ["version": "\(version)", "reads": "\(foreignKeyIDDecrypts)"])
    }

    /// True when the cache knows `version` and, for a key_id of our scheme, derives exactly it.
    /// A version newer than every cached one triggers one rate-limited metadata refresh first.
    private func checkKnown(version: UInt32, keyID: KeyID?, completion: @escaping (Bool) -> Void) {
        let matches: (KeyCache) -> Bool = { cache in
            guard let derived = cache.keyID(forVersion: version) else { return false }
            return keyID == nil || derived == keyID
        }
        let cache = keyProbe.cache
        if matches(cache) { return completion(true) }
        let newest = cache.keyIDs.keys.max() ?? 0
        guard version > newest else { return completion(false) }
        keyProbe.refreshForNewerVersion { [weak self] refreshed in
            guard let self, refreshed else { return completion(false) }
            completion(matches(self.keyProbe.cache))
        }
    }

    /// The absolute deadline for a request: the front's remaining gRPC deadline (capped at
    /// `Limits.maxDeadlineMillis`), or the configured request timeout when none was given.
    func deadline(_ deadlineMillis: UInt32) -> Int64 {
        let budget =
            deadlineMillis == 0
            ? Int64(configuration.requestTimeoutMillis) : Int64(min(deadlineMillis, Limits.maxDeadlineMillis))
        return EventLoop.nowMillis() + budget
    }

    private func logVaultFailure(_ operation: String, _ error: VaultCallError, started: UInt64) {
        logger.warning(
            "broker.vault.failed",
            metadata: [
                "op": "\(operation)", "code": "\(error.code)", "status": "\(error.status)", "reason": "\(error.reason)",
                "millis": "\((EventLoop.nowNanos() - started) / 1_000_000)",
            ])
    }
}
