import KMSRuntime
import Logging

/// Several Vault addresses (`--vault-address a,b,c`) behind one `VaultTransport`: one inner
/// transport per address, and a `VaultAddressSelector` that says which one serves.
///
/// A request goes to the current address. When the answer says that address cannot serve (the
/// connection failed or hung, the node is sealed, a standby redirected, or any 5xx), the request
/// is sent once more, to the next address, with what is left of its deadline; the selector moves
/// every later request there. With more than one address the first attempt gets half of the
/// request's time, so that a node that hangs leaves time for the second one. Tokens are valid
/// cluster-wide, so nothing logs in again. That resend is the call's whole retry budget: the
/// `TransitClient` retry (one address only) is skipped, so a KMS call costs at most two Vault
/// requests (plus a fresh login when Vault says the token is invalid).
///
/// While the preferred (first) address is not in use, its `sys/health` is asked every
/// `recheckIntervalMillis` (no token: the endpoint is unauthenticated); an active node (200) or
/// an unsealed standby (429, 473: OpenBao and Vault standbys forward requests) brings the broker
/// back to it.
package final class FailoverTransport: VaultTransport {
    package let addresses: [String]
    private let loop: EventLoop
    private let transports: [any VaultTransport]
    private let logger: Logger
    private let healthTimeoutMillis: Int
    package private(set) var selector: VaultAddressSelector
    private var recheckTimer: EventLoop.TimerID?
    private var rechecking = false
    private var stopped = false

    /// A failover is pointless with less time than this left.
    static let minimumFailoverMillis: Int64 = 50

    package init(
        loop: EventLoop, addresses: [String], transports: [any VaultTransport], logger: Logger,
        recheckIntervalMillis: Int64 = 5_000, healthTimeoutMillis: Int = 2_000
    ) {
        precondition(!transports.isEmpty && transports.count == addresses.count)
        self.loop = loop
        self.addresses = addresses
        self.transports = transports
        self.logger = logger
        self.healthTimeoutMillis = healthTimeoutMillis
        selector = VaultAddressSelector(
            count: transports.count, recheckIntervalMillis: recheckIntervalMillis,
            cooldownMillis: recheckIntervalMillis)
    }

    deinit {
        if let recheckTimer { loop.cancel(recheckTimer) }
    }

    /// The index of the address serving now (0: the first configured).
    package var currentIndex: Int { selector.current }

    package var inFlightCount: Int { transports.reduce(0) { $0 + $1.inFlightCount } }

    /// With several addresses the resend to the next one is the call's only retry
    /// (`TransitClient` does not add its own); with one, nothing is resent here.
    package var failsOverToAnotherAddress: Bool { transports.count > 1 }

    package func send(_ request: VaultRequest, completion: @escaping (VaultResponse) -> Void) {
        let deadline = EventLoop.nowMillis() + Int64(max(1, request.timeoutMillis))
        let index = selector.current
        var first = request
        first.timeoutMillis = VaultAddressSelector.firstAttemptMillis(
            timeoutMillis: max(1, request.timeoutMillis), addressCount: transports.count)
        transports[index].send(first) { [weak self] response in
            guard let self else { return completion(response) }
            guard Self.shouldFailOver(response), !self.stopped else {
                if Self.isServed(response) { self.selector.succeeded(index: index) }
                return completion(response)
            }
            let remaining = deadline - EventLoop.nowMillis()
            let before = self.selector.current
            guard let next = self.selector.failed(index: index, now: EventLoop.nowMillis()) else {
                return completion(response)
            }
            if self.selector.current != before { self.movedAway(from: before, reason: Self.reason(response)) }
            guard remaining > Self.minimumFailoverMillis else { return completion(response) }
            var again = request
            again.timeoutMillis = Int(remaining)
            self.transports[next].send(again) { [weak self] second in
                if let self, Self.isServed(second) {
                    let current = self.selector.current
                    self.selector.succeeded(index: next)
                    if self.selector.current != current {
                        self.movedAway(from: current, reason: "address \(next) served a retry")
                    }
                }
                completion(second)
            }
        }
    }

    package func cancelAll() {
        stopped = true
        if let recheckTimer { loop.cancel(recheckTimer) }
        recheckTimer = nil
        for transport in transports { transport.cancelAll() }
    }

    /// The answer means "this address cannot serve now; another node might": the connection
    /// failed, broke or hung; a sealed node or any other 5xx; a standby's redirect (307/308).
    /// Not on 4xx (permission, invalid input, rate limit: the cluster would answer the same).
    static func shouldFailOver(_ response: VaultResponse) -> Bool {
        if let error = response.transportError {
            switch error {
            case .connectFailed, .connectionReset, .timedOut: return true
            case .tls, .responseTooLarge, .cancelled, .other: return false
            }
        }
        switch response.status {
        case 307, 308, 500...599: return true
        default: return false
        }
    }

    /// The address answered as a working node does (any status below 500 but a redirect).
    private static func isServed(_ response: VaultResponse) -> Bool {
        response.transportError == nil && response.status < 500 && response.status != 307 && response.status != 308
    }

    private static func reason(_ response: VaultResponse) -> String {
        if let error = response.transportError { return error.description }
        return "HTTP \(response.status)"
    }

    private func movedAway(from old: Int, reason: String) {
        logger.warning(
            "broker.vault.failover",
            metadata: [
                "from_index": "\(old)", "from": "\(addresses[old])", "to_index": "\(selector.current)",
                "to": "\(addresses[selector.current])", "reason": "\(reason)",
            ])
        scheduleRecheck()
    }

    // MARK: returning to the preferred address

    private func scheduleRecheck() {
        guard recheckTimer == nil, !stopped, selector.current != VaultAddressSelector.preferredIndex else { return }
        recheckTimer = loop.schedule(afterMillis: selector.recheckIntervalMillis) { [weak self] in
            guard let self else { return }
            self.recheckTimer = nil
            self.recheckPreferred()
        }
    }

    private func recheckPreferred() {
        guard !stopped, !rechecking, selector.shouldRecheckPreferred(now: EventLoop.nowMillis()) else {
            return scheduleRecheck()
        }
        rechecking = true
        let preferred = VaultAddressSelector.preferredIndex
        let probe = VaultRequest(method: .get, path: "sys/health", timeoutMillis: healthTimeoutMillis)
        transports[preferred].send(probe) { [weak self] response in
            guard let self else { return }
            self.rechecking = false
            if response.transportError == nil, [200, 429, 473].contains(response.status), !self.stopped {
                let from = self.selector.current
                self.selector.preferredRecovered()
                self.logger.notice(
                    "broker.vault.preferred_back",
                    metadata: [
                        "from_index": "\(from)", "to_index": "\(preferred)", "to": "\(self.addresses[preferred])",
                        "health_status": "\(response.status)",
                    ])
            }
            self.scheduleRecheck()
        }
    }
}
