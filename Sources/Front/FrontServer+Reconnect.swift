import KMSCore
import KMSRuntime
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// The split topologies: the front connects to the broker's socket itself and, when the broker
/// goes away (restart, upgrade, crash), keeps serving: Status answers a non-ok healthz and
/// Encrypt/Decrypt answer UNAVAILABLE at once, while it reconnects with capped exponential backoff.
extension FrontServer {
    static let minReconnectMillis: Int64 = 100
    static let maxReconnectMillis: Int64 = 5_000

    /// Connects to the broker and sends HELLO; on failure schedules the next attempt.
    func connectBroker() {
        // Also while draining: calls still open may be waiting for the broker.
        guard let address = brokerAddress, lifecycle == .awaitingHello || lifecycle == .draining,
            brokerClient.state == .failed
        else { return }
        let fd: Int32
        do {
            fd = try UnixSocket.connect(to: address, type: Int32(SOCK_SEQPACKET.rawValue))
        } catch {
            grpc.brokerUnreachable()
            return retryLater("connect to broker at \(address): \(error)")
        }
        if let refused = checkBrokerPeer(fd: fd, address: address) {
            close(fd)
            grpc.brokerUnreachable()
            return retryLater(refused)
        }
        do {
            try brokerClient.reconnect(fd: fd, frontVersion: FrontProcess.version)
        } catch {
            close(fd)
            return retryLater("broker connection setup: \(error)")
        }
        logger.info("broker.connected", metadata: ["broker": "\(address)"])
    }

    /// Whether the peer at `fd` is the configured broker (SO_PEERCRED), checked before HELLO so
    /// that nothing is ever sent to an impostor; nil if it is, else the reason (logged).
    private func checkBrokerPeer(fd: Int32, address: ListenAddress) -> String? {
        let expected: uid_t
        switch brokerPeerPolicy.expectedUID(for: address) {
        case .success(let uid): expected = uid
        case .failure(let error): return error.description
        }
        guard let peer = UnixSocket.peerCredentials(fd) else {
            return "cannot read the broker's credentials (SO_PEERCRED): \(SystemError("getsockopt"))"
        }
        guard let reason = brokerPeerPolicy.refusal(peerUID: peer.uid, peerGID: peer.gid, expectedUID: expected)
        else { return nil }
        logger.error(
            "front.broker_refused",
            metadata: [
                "broker": "\(address)", "reason": "\(reason)", "peer_uid": "\(peer.uid)", "peer_gid": "\(peer.gid)",
                "peer_pid": "\(peer.pid)", "expected_uid": "\(expected)",
                "expected_gid": "\(brokerPeerPolicy.gid.map { "\($0)" } ?? "any")",
            ])
        return "broker refused: \(reason)"
    }

    /// The broker connection failed while serving: the open calls wait for the first reconnect
    /// attempt (GRPCServer+BrokerWait.swift), report it, and reconnect.
    func brokerLost(_ reason: String) {
        logger.warning("broker.connection_lost", metadata: ["reason": "\(reason)"])
        grpc.brokerConnectionLost()
        if lifecycle != .draining { lifecycle = .awaitingHello }
        retryLater(reason)
    }

    private func retryLater(_ reason: String) {
        systemdStatus.report("broker unavailable")
        let delay = reconnectDelayMillis
        reconnectDelayMillis = Self.nextDelay(after: delay)
        logger.warning("broker.reconnect_scheduled", metadata: ["reason": "\(reason)", "delay_ms": "\(delay)"])
        loop.schedule(afterMillis: delay) { [weak self] in self?.connectBroker() }
    }

    /// Doubles the delay up to `maxReconnectMillis`, with up to 20 % jitter so that fronts do
    /// not reconnect in lockstep.
    static func nextDelay(after delay: Int64) -> Int64 {
        let doubled = min(delay * 2, maxReconnectMillis)
        return doubled - Int64.random(in: 0...(doubled / 5))
    }
}
