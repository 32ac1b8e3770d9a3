import KMSCore
import KMSRuntime
import Logging
import VaultClient

#if canImport(Glibc)
    import Glibc
#endif

/// Keeps the `KeyCache` fresh: reads the key metadata after each login and every
/// `keyCheckInterval`, and on demand (rate-limited) when Decrypt names a version newer than any
/// cached one. Concurrent reads are coalesced into one Vault call.
final class KeyProbe {
    enum Health: Equatable {
        case unknown
        case healthy
        case unhealthy(String)
    }

    private let loop: EventLoop
    private let transit: TransitClient
    private let intervalMillis: Int
    private let requestTimeoutMillis: Int
    private let logger: Logger

    private(set) var cache: KeyCache
    private(set) var health: Health = .unknown
    /// Unix seconds when the active version last changed (nil before the first adoption).
    private(set) var activeSinceSeconds: Int64?
    private var reading = false
    private var waiters: [() -> Void] = []
    private var lastOnDemandMillis: Int64?
    private var periodic: RepeatingTimer?
    private var stopped = false

    init(
        loop: EventLoop, transit: TransitClient, namespace: String, intervalMillis: Int, requestTimeoutMillis: Int,
        logger: Logger
    ) {
        self.loop = loop
        self.transit = transit
        self.intervalMillis = intervalMillis
        self.requestTimeoutMillis = requestTimeoutMillis
        self.logger = logger
        cache = KeyCache(namespace: namespace, mount: transit.keyPath.mount, keyName: transit.keyPath.keyName)
    }

    /// Starts the periodic probe (the first read happens after login, via `probe()`).
    func startPeriodic() {
        guard !stopped else { return }
        if periodic == nil {
            periodic = RepeatingTimer(loop: loop, intervalMillis: intervalMillis) { [weak self] in self?.probe() }
        }
        periodic?.start()
    }

    func stop() {
        stopped = true
        periodic?.stop()
    }

    /// Reads the metadata now (or joins a read in progress); `completion` runs after the result
    /// has been applied to the cache.
    func probe(completion: (() -> Void)? = nil) {
        if let completion { waiters.append(completion) }
        guard !reading, !stopped else {
            if stopped { finish() }
            return
        }
        reading = true
        transit.readKey(deadlineMillis: EventLoop.nowMillis() + Int64(requestTimeoutMillis)) { [weak self] result in
            guard let self else { return }
            self.reading = false
            self.apply(result)
            self.finish()
        }
    }

    /// Decrypt named a version newer than anything cached: refresh once, at most once per
    /// interval. `completion(false)` when the rate limit forbids a refresh now.
    func refreshForNewerVersion(completion: @escaping (Bool) -> Void) {
        if reading {
            probe { completion(true) }
            return
        }
        let now = EventLoop.nowMillis()
        if let last = lastOnDemandMillis, now - last < Int64(intervalMillis) {
            loop.schedule(afterMillis: 0) { completion(false) }
            return
        }
        lastOnDemandMillis = now
        logger.info("broker.key.refresh", metadata: ["trigger": "decrypt of a newer version"])
        probe { completion(true) }
    }

    private func finish() {
        let pending = waiters
        waiters.removeAll()
        for waiter in pending { waiter() }
    }

    /// The short healthz reason for a failed Vault call on `path`.
    static func reason(for error: VaultCallError, path: String) -> String {
        switch error.code {
        case .keyMissing: "key missing: \(path)"
        case .permissionDenied: "permission denied on \(path)"
        case .sealed: "vault sealed"
        case .unavailable where error.isTLSFailure: "vault TLS handshake failed"
        case .unavailable where error.cause == .standbyRedirect: VaultErrorClassifier.standbyReason
        case .unavailable, .deadlineExceeded: "vault unreachable"
        case .throttled: "vault throttled"
        case .notReady: "not logged in"
        default: "vault call failed on \(path)"
        }
    }

    private func apply(_ result: Result<KeyMetadata, VaultCallError>) {
        let previous = health
        switch result {
        case .success(let metadata):
            switch cache.observe(metadata) {
            case .healthy(let version, let changed):
                health = .healthy
                if let pending = cache.pendingVersion {
                    logger.info("broker.key.pending", metadata: ["version": "\(pending)", "active": "\(version)"])
                }
                if changed {
                    activeSinceSeconds = Int64(time(nil))
                    logger.info(
                        "broker.key.active",
                        metadata: [
                            "version": "\(version)", "key_id": "\(cache.activeKeyID?.description ?? "")",
                        ])
                }
            case .unhealthy(let reason):
                health = .unhealthy(reason)
            }
        case .failure(let error):
            switch error.code {
            case .notReady:
                return  // not logged in: the token's health reason says so
            case .keyMissing:
                cache.forget()
                health = .unhealthy(Self.reason(for: error, path: transit.keyMetadataPath))
            default:
                health = .unhealthy(Self.reason(for: error, path: transit.keyMetadataPath))
            }
            logger.warning(
                "broker.key.read_failed", metadata: ["reason": "\(error.reason)", "status": "\(error.status)"])
        }
        if health != previous, case .unhealthy(let reason) = health {
            logger.warning("broker.key.unhealthy", metadata: ["reason": "\(reason)"])
        }
    }
}
