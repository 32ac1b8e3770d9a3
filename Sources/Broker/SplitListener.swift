import KMSRuntime
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// The broker's listening SOCK_SEQPACKET socket in the split topologies (systemd units, static
/// Pod). Every connection's peer is checked with `SO_PEERCRED` before a single packet is read:
/// only the front's uid/gid is served; anyone else is refused with one log line and closed.
public final class SplitListener {
    /// Who may connect. A configured uid must match the peer's uid, a configured gid its gid;
    /// at least one of the two is required (an empty policy admits nobody).
    public struct PeerPolicy: Equatable, Sendable {
        public var uid: uid_t?
        public var gid: gid_t?

        public init(uid: uid_t?, gid: gid_t?) {
            self.uid = uid
            self.gid = gid
        }

        public func admits(uid peerUID: uid_t, gid peerGID: gid_t) -> Bool {
            guard uid != nil || gid != nil else { return false }
            if let uid, uid != peerUID { return false }
            if let gid, gid != peerGID { return false }
            return true
        }
    }

    /// At most this many front connections at once (one is normal; a restarting front briefly two).
    public static let maxConnections = 4

    private var acceptor: Acceptor!
    private unowned let loop: EventLoop
    private let logger: Logger
    private let policy: PeerPolicy
    private let onAccept: (Int32, @escaping () -> Void) -> Void
    private var open = 0

    /// `onAccept` receives each admitted connection and a closure to call when it closes.
    public init(
        fd: Int32, loop: EventLoop, logger: Logger, policy: PeerPolicy,
        onAccept: @escaping (Int32, @escaping () -> Void) -> Void
    ) {
        self.loop = loop
        self.logger = logger
        self.policy = policy
        self.onAccept = onAccept
        acceptor = Acceptor(
            fd: fd, loop: loop, logger: logger, pausedEvent: "broker.accept_paused",
            failedEvent: "broker.accept_failed"
        ) { [unowned self] connection in self.admit(connection) }
    }

    public func start() throws(SystemError) { try acceptor.start() }

    /// Stops accepting; the caller owns (closes, maybe unlinks) the listening socket.
    public func stop() {
        acceptor.stop()
    }

    private func admit(_ connection: Int32) {
        guard let peer = UnixSocket.peerCredentials(connection) else {
            logger.warning("broker.peer_refused", metadata: ["reason": "no peer credentials"])
            close(connection)
            return
        }
        guard policy.admits(uid: peer.uid, gid: peer.gid) else {
            logger.warning(
                "broker.peer_refused",
                metadata: [
                    "reason": "peer uid/gid not allowed", "peer_uid": "\(peer.uid)", "peer_gid": "\(peer.gid)",
                    "peer_pid": "\(peer.pid)",
                ])
            close(connection)
            return
        }
        guard open < Self.maxConnections else {
            logger.warning(
                "broker.peer_refused", metadata: ["reason": "connection limit", "peer_pid": "\(peer.pid)"])
            close(connection)
            return
        }
        open += 1
        var closed = false
        onAccept(connection) { [weak self] in
            guard !closed else { return }
            closed = true
            self?.open -= 1
        }
    }
}
