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
/// Simple for now: renew at 2/3 of the lease; log in again on any renewal failure, when the
/// renewed TTL is too short, or when a call reports the token invalid. Login failures back off
/// from 1 s, doubling to 60 s, with jitter. (Lockout-aware backoff and max-TTL handling come later.)
final class TokenLifecycle {
    enum State: Equatable {
        case idle
        case loggingIn
        case loggedIn
        case backingOff
        case stopped
    }

    static let initialBackoffMillis: Int64 = 1000
    static let maxBackoffMillis: Int64 = 60_000
    /// A renewed lease shorter than this is not worth keeping: log in again for a fresh TTL.
    static let minimumUsefulLeaseSeconds: Int64 = 30

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
    private var backoffMillis = TokenLifecycle.initialBackoffMillis
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
        return lastFailureReason ?? "not logged in yet"
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
            logger.error("broker.login.failed", metadata: ["reason": "\(error.description)"])
            loginFailed(reason: "login failed")
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
            backoffMillis = Self.initialBackoffMillis
            logger.info(
                "broker.login.ok",
                metadata: ["lease_seconds": "\(token.leaseSeconds)", "renewable": "\(token.renewable)"])
            finishWaiters(true)
            onLogin?()
        case .failure(let error):
            logger.error("broker.login.failed", metadata: ["reason": "\(error.reason)", "status": "\(error.status)"])
            loginFailed(reason: Self.healthReason(for: error))
        }
    }

    private func loginFailed(reason: String) {
        lastFailureReason = reason
        state = .backingOff
        // A token that has not expired yet stays usable while logins fail.
        if currentToken == nil { dropToken() }
        let jitter = Int64.random(in: -(backoffMillis / 5)...(backoffMillis / 5))
        let delay = backoffMillis + jitter
        backoffMillis = min(backoffMillis * 2, Self.maxBackoffMillis)
        timer = loop.schedule(afterMillis: delay) { [weak self] in
            self?.timer = nil
            self?.logIn()
        }
        finishWaiters(false)
    }

    static func healthReason(for error: VaultCallError) -> String {
        switch error.code {
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
        let now = EventLoop.nowMillis()
        tokenExpiresMillis = token.leaseSeconds > 0 ? now + token.leaseSeconds * 1000 : nil
        scheduleRefresh(leaseSeconds: token.leaseSeconds, renewable: token.renewable)
    }

    private func scheduleRefresh(leaseSeconds: Int64, renewable: Bool) {
        cancelTimer()
        guard leaseSeconds > 0 else { return }  // a non-expiring token needs no renewal
        let delay = leaseSeconds * 1000 * 2 / 3
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
        case .success(let answer)
        where answer.leaseSeconds == 0 || answer.leaseSeconds >= Self.minimumUsefulLeaseSeconds:
            tokenExpiresMillis = answer.leaseSeconds > 0 ? EventLoop.nowMillis() + answer.leaseSeconds * 1000 : nil
            logger.debug("broker.token.renewed", metadata: ["lease_seconds": "\(answer.leaseSeconds)"])
            scheduleRefresh(leaseSeconds: answer.leaseSeconds, renewable: answer.renewable)
        case .success(let answer):
            logger.info("broker.token.ttl_short", metadata: ["lease_seconds": "\(answer.leaseSeconds)"])
            logIn()
        case .failure(let error):
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
