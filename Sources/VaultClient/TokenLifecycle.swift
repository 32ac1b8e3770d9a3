import KMSCore
import KMSRuntime
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// Logs in with AppRole, keeps the token renewed and logs in again when renewal fails or the
/// token is rejected. The token lives only here, in `SecretBytes`.
///
/// Renews (renew-self) at 2/3 of the lease. A renewal that grants less than the login did means
/// the token's max TTL is near: the next step is then a fresh login at 2/3 of what is left,
/// not another renewal. A refused renewal, or a call reporting the token invalid, leads to a
/// login at once. The secret-ID file is read again at every login. Failed logins back off with
/// `LoginBackoff` (jittered, never reaching the AppRole lockout, a refused secret ID never retried
/// sooner); while they fail, a token that has not expired stays in use, and the secret-ID file is
/// watched: a changed file is tried at once.
package final class TokenLifecycle: VaultTokenSource {
    enum State: Equatable {
        case idle
        case loggingIn
        case loggedIn
        case backingOff
        case stopped
    }

    private let loop: EventLoop
    private let transport: any VaultTransport
    private let login: AppRoleLogin
    private let secretIDPath: String
    private let requestTimeoutMillis: Int
    private let logger: Logger

    /// How often the secret-ID file is looked at while logins back off. A change is acted on when
    /// a second look finds it settled, so within one to two intervals of the write.
    static let secretIDWatchMillis: Int64 = 500
    /// The health reason (and log reason) while Vault refuses the secret ID in the file.
    static let waitingForSecretIDReason = "secret ID refused; waiting for a new secret-ID file"

    private(set) var state: State = .idle
    private(set) var token: SecretBytes?
    private var tokenExpiresMillis: Int64?
    private var lastFailureReason: String?
    private var lastFailureKind: LoginBackoff.Failure?
    private var backoff = LoginBackoff()
    /// The lease the last login granted: a renewal granting less is capped by the max TTL.
    private var loginLeaseSeconds: Int64 = 0
    /// Whether a token was held and ran out (for the "token expired" health reason).
    private var hadToken = false
    /// Counters for metrics.
    package private(set) var counters = TokenCounters()
    /// The secret-ID file as it was when last read for a login (or found unusable).
    private var attemptedFingerprint: SecretIDFingerprint?
    /// A change seen at one look, acted on when the next look sees the same (a writer may be
    /// between truncating and writing).
    private var settlingFingerprint: SecretIDFingerprint?
    /// The secret ID Vault refused last: a file rewritten with the same content is not news.
    private var refusedSecretID: SecretBytes?
    private var watchTimer: EventLoop.TimerID?
    private var timer: EventLoop.TimerID?
    private var waiters: [(Bool) -> Void] = []
    /// When lookup-self last found the token dead (`tokenIsAlive`).
    private var lastDeadTokenVerdictMillis: Int64 = .min / 2
    static let deadTokenVerdictIntervalMillis: Int64 = 10_000
    /// Called after every successful login (the service reads key metadata then).
    package var onLogin: (() -> Void)?

    package init(
        loop: EventLoop, transport: any VaultTransport, login: AppRoleLogin, secretIDPath: String,
        requestTimeoutMillis: Int, logger: Logger
    ) {
        self.loop = loop
        self.transport = transport
        self.login = login
        self.secretIDPath = secretIDPath
        self.requestTimeoutMillis = requestTimeoutMillis
        self.logger = logger
    }

    /// nil when a usable token is held; else a short healthz reason.
    package var healthReason: String? {
        if currentToken != nil { return nil }
        if lastFailureKind == .credentials, let reason = lastFailureReason { return reason }
        if let reason = lastFailureReason, reason.hasPrefix("vault ") { return reason }
        if hadToken { return "token expired" }
        return lastFailureReason ?? StartingHealth.notLoggedInYet
    }

    /// Seconds until the held token expires; nil without a token or for a non-expiring one.
    package var secondsToExpiry: Int64? {
        guard token != nil, let expires = tokenExpiresMillis else { return nil }
        return max(0, (expires - EventLoop.nowMillis()) / 1000)
    }

    /// The token, unless it is known to have expired.
    package var currentToken: SecretBytes? {
        if let expires = tokenExpiresMillis, EventLoop.nowMillis() >= expires { return nil }
        return token
    }

    package func start() {
        guard state == .idle else { return }
        logIn()
    }

    package func stop() {
        state = .stopped
        cancelTimer()
        stopWatchingSecretID()
        let pending = waiters
        waiters.removeAll()
        for waiter in pending { waiter(false) }
    }

    /// A call was refused with "invalid token" using `stale`: log in again (once, coalesced with
    /// any login in progress) and report whether a new token is available.
    package func replaceInvalidToken(_ stale: SecretBytes, completion: @escaping (Bool) -> Void) {
        // While logins are failing and backing off, a forced login would bypass the backoff.
        guard state != .stopped, state != .backingOff else {
            loop.schedule(afterMillis: 0) { completion(false) }
            return
        }
        if let token {
            guard token.constantTimeEquals(stale) else {
                // Another call already replaced it.
                loop.schedule(afterMillis: 0) { completion(true) }
                return
            }
            dropToken()
        }
        waiters.append(completion)
        if state != .loggingIn { logIn() }
    }

    /// OpenBao's bare 403 for a dead token: lookup-self with it; 403 there too means dead. At
    /// most one "dead" verdict per `deadTokenVerdictIntervalMillis`, so that a token without the
    /// default policy (lookup-self refused while alive) cannot make every denied call log in.
    package func tokenIsAlive(_ token: SecretBytes, completion: @escaping (Bool) -> Void) {
        let now = EventLoop.nowMillis()
        guard state != .stopped, now - lastDeadTokenVerdictMillis >= Self.deadTokenVerdictIntervalMillis else {
            loop.schedule(afterMillis: 0) { completion(true) }
            return
        }
        transport.send(login.lookupSelfRequest(token: token, timeoutMillis: requestTimeoutMillis)) {
            [weak self] response in
            guard let self else { return completion(true) }
            let dead = response.transportError == nil && response.status == 403
            if dead {
                self.lastDeadTokenVerdictMillis = EventLoop.nowMillis()
                self.logger.info("broker.token.dead", metadata: ["reason": "lookup-self refused (403)"])
            }
            completion(!dead)
        }
    }

    // MARK: login

    private func logIn() {
        guard state != .stopped else { return }
        cancelTimer()
        stopWatchingSecretID()
        state = .loggingIn
        let secretID: SecretBytes
        do {
            let loaded = try SecretIDFile.loadFingerprinted(path: secretIDPath)
            secretID = loaded.secret
            attemptedFingerprint = loaded.fingerprint
        } catch {
            attemptedFingerprint = SecretIDFingerprint.current(path: secretIDPath)
            // Not sent to Vault: does not count toward the lockout. The token in use stays.
            logger.error(
                "broker.login.secret_id_refused",
                metadata: ["reason": "\(error.description)", "token_kept": "\(currentToken != nil)"])
            loginFailed(reason: "login failed", kind: .transient)
            return
        }
        let request = login.request(secretID: secretID, timeoutMillis: requestTimeoutMillis)
        transport.send(request) { [weak self] response in self?.loginAnswered(response, secretID: secretID) }
    }

    private func loginAnswered(_ response: VaultResponse, secretID: SecretBytes) {
        guard state == .loggingIn else { return }
        switch VaultToken.parse(response) {
        case .success(let token):
            adopt(token)
            backoff.succeeded()
            refusedSecretID = nil
            lastFailureKind = nil
            counters.loginSuccesses += 1
            logger.info(
                "broker.login.ok",
                metadata: ["lease_seconds": "\(token.leaseSeconds)", "renewable": "\(token.renewable)"])
            finishWaiters(true)
            onLogin?()
        case .failure(let error):
            logger.error("broker.login.failed", metadata: ["reason": "\(error.reason)", "status": "\(error.status)"])
            let kind = Self.failureKind(error)
            if kind == .credentials { refusedSecretID = secretID }
            loginFailed(reason: Self.healthReason(for: error), kind: kind)
        }
    }

    private func loginFailed(reason: String, kind: LoginBackoff.Failure) {
        lastFailureKind = kind
        counters.loginFailures += 1
        state = .backingOff
        // A token that has not expired yet stays usable while logins fail.
        if currentToken == nil { dropToken() }
        let now = EventLoop.nowMillis()
        var delay = backoff.failed(kind, now: now)
        if kind == .transient, let expires = tokenExpiresMillis, token != nil {
            // Vault did not judge the credentials: try again before the token in use runs out,
            // but never sooner than the first transient delay, and never before a refused secret
            // ID's own back-off or into the lockout budget. A refused secret ID is never retried
            // early: the same one would be refused again (a new file is tried when it appears).
            let beforeExpiry = max(LoginBackoff.transientInitialMillis, (expires - now) / 2)
            delay = max(min(delay, beforeExpiry), backoff.earliestAllowed(now: now) - now)
        }
        let nextAttempt = UTCTime.rfc3339(offsetMillis: delay, withMillis: false)
        if kind == .credentials {
            lastFailureReason = "\(Self.waitingForSecretIDReason) (next attempt \(nextAttempt))"
            logger.warning(
                "broker.login.waiting_for_secret_id",
                metadata: [
                    "reason": "\(Self.waitingForSecretIDReason)", "next_attempt": "\(nextAttempt)",
                    "token_kept": "\(currentToken != nil)", "path": "\(secretIDPath)",
                ])
        } else {
            lastFailureReason = reason
        }
        logger.info(
            "broker.login.retry",
            metadata: ["after_millis": "\(delay)", "kind": "\(kind)", "next_attempt": "\(nextAttempt)"])
        timer = loop.schedule(afterMillis: delay) { [weak self] in
            self?.timer = nil
            self?.logIn()
        }
        watchSecretID()
        finishWaiters(false)
    }

    // MARK: watching the secret-ID file while backing off

    private func watchSecretID() {
        guard watchTimer == nil, state == .backingOff else { return }
        watchTimer = loop.schedule(afterMillis: Self.secretIDWatchMillis) { [weak self] in
            guard let self else { return }
            self.watchTimer = nil
            guard self.state == .backingOff else { return }
            self.lookAtSecretIDFile()
            self.watchSecretID()
        }
    }

    private func stopWatchingSecretID() {
        if let watchTimer { loop.cancel(watchTimer) }
        watchTimer = nil
        settlingFingerprint = nil
    }

    /// A changed file is new information: tried at once, inside the back-off, while the lockout
    /// budget keeps a slot for it. An unchanged file waits for the back-off.
    private func lookAtSecretIDFile() {
        let seen = SecretIDFingerprint.current(path: secretIDPath)
        guard seen != attemptedFingerprint else {
            settlingFingerprint = nil
            return
        }
        guard seen == settlingFingerprint else {
            settlingFingerprint = seen
            return
        }
        settlingFingerprint = nil
        attemptedFingerprint = seen
        if let refused = refusedSecretID, let again = try? SecretIDFile.load(path: secretIDPath),
            again.constantTimeEquals(refused)
        {
            logger.info("broker.login.secret_id_unchanged", metadata: ["path": "\(secretIDPath)"])
            return
        }
        backoff.secretIDChanged()
        let now = EventLoop.nowMillis()
        let earliest = backoff.earliestAllowed(now: now, changedFile: true)
        guard earliest <= now else {
            logger.warning(
                "broker.login.secret_id_changed",
                metadata: [
                    "path": "\(secretIDPath)", "action": "deferred: the AppRole lockout budget is spent",
                    "next_attempt": "\(UTCTime.rfc3339(offsetMillis: earliest - now, withMillis: false))",
                ])
            return
        }
        logger.info("broker.login.secret_id_changed", metadata: ["path": "\(secretIDPath)", "action": "login now"])
        logIn()
    }

    /// 400 and 403 answers to a login are Vault judging the credentials (they count toward the
    /// AppRole lockout); everything else is transient.
    static func failureKind(_ error: VaultCallError) -> LoginBackoff.Failure {
        switch error.status {
        case 400, 403: .credentials
        default: .transient
        }
    }

    static func healthReason(for error: VaultCallError) -> String {
        switch error.code {
        case .unavailable where error.isTLSFailure: "vault TLS handshake failed"
        case .unavailable where error.cause == .standbyRedirect: VaultErrorClassifier.standbyReason
        case .unavailable where error.status == 0, .deadlineExceeded: "vault unreachable"
        case .sealed: "vault sealed"
        default: "login failed"
        }
    }

    // MARK: renewal

    private func adopt(_ token: VaultToken) {
        self.token = token.secret
        state = .loggedIn
        lastFailureReason = nil
        hadToken = true
        loginLeaseSeconds = token.leaseSeconds
        let now = EventLoop.nowMillis()
        tokenExpiresMillis = token.leaseSeconds > 0 ? now + token.leaseSeconds * 1000 : nil
        scheduleRefresh(leaseSeconds: token.leaseSeconds, renewable: token.renewable)
    }

    private func scheduleRefresh(leaseSeconds: Int64, renewable: Bool) {
        cancelTimer()
        guard leaseSeconds > 0 else { return }  // a non-expiring token needs no renewal
        let delay = max(1, leaseSeconds * 1000 * 2 / 3)
        timer = loop.schedule(afterMillis: delay) { [weak self] in
            guard let self else { return }
            self.timer = nil
            if renewable { self.renew() } else { self.logIn() }
        }
    }

    private func renew() {
        guard state == .loggedIn, let token else { return logIn() }
        transport.send(login.renewRequest(token: token, timeoutMillis: requestTimeoutMillis)) { [weak self] response in
            self?.renewAnswered(response, renewed: token)
        }
    }

    private func renewAnswered(_ response: VaultResponse, renewed: SecretBytes) {
        guard state == .loggedIn, let token, token.constantTimeEquals(renewed) else { return }
        switch VaultToken.parse(response) {
        case .success(let answer):
            counters.renewalSuccesses += 1
            tokenExpiresMillis = answer.leaseSeconds > 0 ? EventLoop.nowMillis() + answer.leaseSeconds * 1000 : nil
            if answer.leaseSeconds > 0 && answer.leaseSeconds < loginLeaseSeconds {
                // Capped by the max TTL: renewing again cannot extend it; log in before it ends.
                logger.info("broker.token.max_ttl_near", metadata: ["lease_seconds": "\(answer.leaseSeconds)"])
                scheduleRefresh(leaseSeconds: answer.leaseSeconds, renewable: false)
            } else {
                logger.debug("broker.token.renewed", metadata: ["lease_seconds": "\(answer.leaseSeconds)"])
                scheduleRefresh(leaseSeconds: answer.leaseSeconds, renewable: answer.renewable)
            }
        case .failure(let error):
            counters.renewalFailures += 1
            logger.warning(
                "broker.token.renew_failed", metadata: ["reason": "\(error.reason)", "status": "\(error.status)"])
            logIn()
        }
    }

    private func dropToken() {
        token = nil
        tokenExpiresMillis = nil
    }

    private func finishWaiters(_ success: Bool) {
        let pending = waiters
        waiters.removeAll()
        for waiter in pending { waiter(success) }
    }

    private func cancelTimer() {
        if let timer { loop.cancel(timer) }
        timer = nil
    }
}

/// Login and renewal outcomes since start.
public struct TokenCounters: Equatable, Sendable {
    public var loginSuccesses: UInt64 = 0
    public var loginFailures: UInt64 = 0
    public var renewalSuccesses: UInt64 = 0
    public var renewalFailures: UInt64 = 0
}
