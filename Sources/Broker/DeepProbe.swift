import KMSCore
import KMSRuntime
import Logging
import VaultClient

/// Every `--deep-check-interval` (default 5 min): encrypts 32 random bytes with the active
/// version and decrypts them again, proving the whole path (policy, key, Vault's crypto), not
/// just the metadata. The plaintext is random and never logged.
final class DeepProbe {
    private let loop: EventLoop
    private let transit: TransitClient
    private let keyProbe: KeyProbe
    private let intervalMillis: Int
    private let requestTimeoutMillis: Int
    private let logger: Logger
    private var periodic: RepeatingTimer?
    private var stopped = false
    private var running = false

    private(set) var health: KeyProbe.Health = .unknown
    private(set) var successes: UInt64 = 0
    private(set) var failures: UInt64 = 0

    init(
        loop: EventLoop, transit: TransitClient, keyProbe: KeyProbe, intervalMillis: Int, requestTimeoutMillis: Int,
        logger: Logger
    ) {
        self.loop = loop
        self.transit = transit
        self.keyProbe = keyProbe
        self.intervalMillis = intervalMillis
        self.requestTimeoutMillis = requestTimeoutMillis
        self.logger = logger
    }

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

    /// One round trip now (skipped while one runs or before the key is known).
    func probe(completion: (() -> Void)? = nil) {
        guard !running, !stopped, let version = keyProbe.cache.activeVersion else {
            completion?()
            return
        }
        running = true
        var plaintext = [UInt8](repeating: 0, count: 32)
        for index in plaintext.indices { plaintext[index] = UInt8.random(in: 0...255) }
        let deadline = EventLoop.nowMillis() + Int64(requestTimeoutMillis)
        transit.encrypt(
            plaintext: plaintext, version: version, uid: "vault-kube-kms-deep-probe", deadlineMillis: deadline
        ) {
            [weak self] result in
            guard let self else { return }
            switch result {
            case .failure(let error):
                self.finish(.unhealthy(KeyProbe.reason(for: error, path: self.transit.encryptPath)), completion)
            case .success(let ciphertext):
                self.transit.decrypt(ciphertext: ciphertext, uid: "vault-kube-kms-deep-probe", deadlineMillis: deadline)
                {
                    result in
                    switch result {
                    case .success(let decrypted) where decrypted == plaintext:
                        self.finish(.healthy, completion)
                    case .success:
                        self.finish(.unhealthy("deep probe: decrypt returned other bytes"), completion)
                    case .failure(let error):
                        self.finish(
                            .unhealthy(KeyProbe.reason(for: error, path: self.transit.decryptPath)), completion)
                    }
                }
            }
        }
    }

    private func finish(_ outcome: KeyProbe.Health, _ completion: (() -> Void)?) {
        running = false
        let previous = health
        health = outcome
        switch outcome {
        case .healthy: successes += 1
        default: failures += 1
        }
        if outcome != previous {
            if case .unhealthy(let reason) = outcome {
                logger.warning("broker.deep_probe.failed", metadata: ["reason": "\(reason)"])
            } else {
                logger.info("broker.deep_probe.ok")
            }
        }
        completion?()
    }
}
