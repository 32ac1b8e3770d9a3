import CSpawn
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
/// `LoginBackoff` (jittered, never reaching the AppRole lockout); while they fail, a token that
/// has not expired stays in use.
final class TokenLifecycle: VaultTokenSource {
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

    private(set) var state: State = .idle
    private(set) var token: SecretBytes?
    private var tokenExpiresMillis: Int64?
    private var lastFailureReason: String?
    private var backoff = LoginBackoff()
    /// The lease the last login granted: a renewal granting less is capped by the max TTL.
    private var loginLeaseSeconds: Int64 = 0
    /// Whether a token was held and ran out (for the "token expired" health reason).
    private var hadToken = false
    /// Counters for metrics.
    private(set) var counters = TokenCounters()
    private var timer: EventLoop.TimerID?
    private var waiters: [(Bool) -> Void] = []
    /// Called after every successful login (the service reads key metadata then).
    var onLogin: (() -> Void)?

    init(
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
    var healthReason: String? {
        if currentToken != nil { return nil }
        if let reason = lastFailureReason, reason.hasPrefix("vault ") { return reason }
        if hadToken { return "token expired" }
        return lastFailureReason ?? "not logged in yet"
    }

    /// Seconds until the held token expires; nil without a token or for a non-expiring one.
    var secondsToExpiry: Int64? {
        guard token != nil, let expires = tokenExpiresMillis else { return nil }
        return max(0, (expires - EventLoop.nowMillis()) / 1000)
    }

    /// The token, unless it is known to have expired.
    var currentToken: SecretBytes? {
        if let expires = tokenExpiresMillis, EventLoop.nowMillis() >= expires { return nil }
        return token
    }

    func start() {
        guard state == .idle else { return }
        logIn()
    }

    func stop() {
        state = .stopped
        cancelTimer()
        let pending = waiters
        waiters.removeAll()
        for waiter in pending { waiter(false) }
    }

    /// A call was refused with "invalid token" using `stale`: log in again (once, coalesced with
    /// any login in progress) and report whether a new token is available.
    func replaceInvalidToken(_ stale: SecretBytes, completion: @escaping (Bool) -> Void) {
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

    // MARK: login

    private func logIn() {
        guard state != .stopped else { return }
        cancelTimer()
        state = .loggingIn
        let secretID: SecretBytes
        do {
            secretID = try SecretIDFile.load(path: secretIDPath)
        } catch {
            // Not sent to Vault: does not count toward the lockout. The token in use stays.
            logger.error(
                "broker.login.secret_id_refused",
                metadata: ["reason": "\(error.description)", "token_kept": "\(currentToken != nil)"])
            loginFailed(reason: "login failed", kind: .transient)
            return
        }
        let request = login.request(secretID: secretID, timeoutMillis: requestTimeoutMillis)
        transport.send(request) { [weak self] response in self?.loginAnswered(response) }
    }

    private func loginAnswered(_ response: VaultResponse) {
        guard state == .loggingIn else { return }
        switch VaultToken.parse(response) {
        case .success(let token):
            adopt(token)
            backoff.succeeded()
            counters.loginSuccesses += 1
            logger.info(
                "broker.login.ok",
                metadata: ["lease_seconds": "\(token.leaseSeconds)", "renewable": "\(token.renewable)"])
            finishWaiters(true)
            onLogin?()
        case .failure(let error):
            logger.error("broker.login.failed", metadata: ["reason": "\(error.reason)", "status": "\(error.status)"])
            loginFailed(reason: Self.healthReason(for: error), kind: Self.failureKind(error))
        }
    }

    private func loginFailed(reason: String, kind: LoginBackoff.Failure) {
        lastFailureReason = reason
        counters.loginFailures += 1
        state = .backingOff
        // A token that has not expired yet stays usable while logins fail.
        if currentToken == nil { dropToken() }
        var delay = backoff.failed(kind, now: EventLoop.nowMillis())
        if let expires = tokenExpiresMillis, token != nil {
            // Try again before the token in use runs out, if the lockout bound allows it.
            let beforeExpiry = max(1, (expires - EventLoop.nowMillis()) / 2)
            delay = max(
                min(delay, beforeExpiry), backoff.earliestAllowed(now: EventLoop.nowMillis()) - EventLoop.nowMillis())
        }
        logger.info("broker.login.retry", metadata: ["after_millis": "\(delay)", "kind": "\(kind)"])
        timer = loop.schedule(afterMillis: delay) { [weak self] in
            self?.timer = nil
            self?.logIn()
        }
        finishWaiters(false)
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
        case .unavailable where error.reason == VaultTransportError.tls.description: "vault TLS handshake failed"
        case .unavailable where error.reason == VaultErrorClassifier.standbyReason: VaultErrorClassifier.standbyReason
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

/// Process-level protections for the process that holds the token.
public enum BrokerProcess {
    /// Makes the process non-dumpable (no core dumps, no ptrace by same-uid processes, /proc/self
    /// files owned by root). Call first thing in the broker's main.
    public static func disableDumping() throws(ConfigurationError) {
        guard kms_set_dumpable(0) == 0 else {
            throw ConfigurationError("prctl(PR_SET_DUMPABLE, 0) failed: \(SystemError("prctl"))")
        }
    }
}
