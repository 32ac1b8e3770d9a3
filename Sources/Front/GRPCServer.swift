import KMSCore
import KMSRuntime
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// The KMS gRPC server: accepts connections on the listening socket, runs one
/// `HTTP2Connection` per client, and forwards each call to the broker (GRPCServer+Calls.swift).
final class GRPCServer {
    /// Concurrent client connections. kube-apiserver holds one per KMS provider; probes and
    /// operators add a few. Connections beyond this are accepted and closed at once, so the
    /// listen backlog never fills with clients that will not be served.
    static let maxConnections = 64
    /// Read size per recv(2), shared by all connections.
    static let readBufferBytes = 16 * 1024

    unowned let loop: EventLoop
    let logger: Logger
    let broker: BrokerClient
    private var acceptor: Acceptor!
    var connections: [UInt64: HTTP2Connection] = [:]
    private var nextConnectionID: UInt64 = 1
    private let readBuffer: UnsafeMutableRawBufferPointer
    /// Called once every connection has closed while draining.
    var onDrained: (() -> Void)?
    private(set) var draining = false
    /// Per-call figures for `/metrics` (recorded where every call is logged).
    let callMetrics = CallMetrics()
    /// `--allowed-client-uid`/`-gid`: checked on every accepted connection (nil: no check).
    var clientPolicy: ClientPeerPolicy?
    /// Connections closed at once: a peer the policy refused, or beyond `maxConnections`.
    private(set) var refusedPeerConnections: UInt64 = 0
    private(set) var refusedLimitConnections: UInt64 = 0
    /// Refusals are logged at most once per 10 s per reason (with the count left out).
    let refusalLog = LogRateLimiter()
    /// Calls waiting for a broker that is not ready yet (GRPCServer+BrokerWait.swift).
    let brokerWait = BrokerWaitQueue()

    /// Calls whose headers arrived and that are not answered yet.
    var callsInFlight: Int {
        connections.values.reduce(0) { total, connection in
            total + connection.streams.values.filter { $0.headersComplete && !$0.answered }.count
        }
    }

    init(listenFD: Int32, loop: EventLoop, broker: BrokerClient, logger: Logger) {
        self.loop = loop
        self.broker = broker
        self.logger = logger
        readBuffer = .allocate(byteCount: Self.readBufferBytes, alignment: 16)
        acceptor = Acceptor(
            fd: listenFD, loop: loop, logger: logger, pausedEvent: "front.accept_paused",
            failedEvent: "front.accept_failed"
        ) { [unowned self] fd in self.admit(fd) }
    }

    deinit { readBuffer.deallocate() }

    /// Starts accepting; the listening socket is made non-blocking.
    func startAccepting() throws(SystemError) { try acceptor.start() }

    /// Stops accepting and closes the listening socket (the path, if any, is the owner's to unlink).
    func stopAccepting() {
        guard acceptor.isAccepting else { return }
        acceptor.stop()
        close(acceptor.fd)
    }

    /// Drain: no new connections, GOAWAY on every connection; open calls run to completion.
    func drain() {
        draining = true
        stopAccepting()
        for connection in connections.values { connection.goAway() }
        if connections.isEmpty { onDrained?() }
    }

    /// Answers every unanswered call with `status` and writes what can be written now (used
    /// when the broker is gone or the drain time is up).
    func failAll(_ status: GRPCStatus) {
        for connection in connections.values.sorted(by: { $0.id < $1.id }) {
            for stream in connection.streams.values.sorted(by: { $0.id < $1.id }) where !stream.answered {
                complete(stream, on: connection, with: .failure(status))
            }
            connection.flush()
        }
    }

    /// One accepted connection (`Acceptor`: close-on-exec and non-blocking already): the peer
    /// policy, the connection limit, then an HTTP/2 session.
    private func admit(_ fd: Int32) {
        if let policy = clientPolicy, !admitted(fd, by: policy) {
            close(fd)
            return
        }
        guard connections.count < Self.maxConnections, !draining else {
            refusedLimitConnections += 1
            if let suppressed = refusalLog.admit("front.connection_refused") {
                logger.warning(
                    "front.connection_refused",
                    metadata: [
                        "reason": "connection limit", "limit": "\(Self.maxConnections)",
                        "suppressed": "\(suppressed)",
                    ])
            }
            close(fd)
            return
        }
        let id = nextConnectionID
        nextConnectionID += 1
        do {
            let connection = try HTTP2Connection(id: id, fd: fd, loop: loop, readBuffer: readBuffer, delegate: self)
            if !connection.isClosed { connections[id] = connection }
            logger.debug("front.connection_opened", metadata: ["connection": "\(id)"])
        } catch {
            logger.error("front.connection_failed", metadata: ["error": "\(error)"])
            close(fd)
        }
    }

    /// SO_PEERCRED of an accepted connection against `policy`; a refusal is counted and logged
    /// (rate-limited), and nothing is read from the peer.
    private func admitted(_ fd: Int32, by policy: ClientPeerPolicy) -> Bool {
        let peer = UnixSocket.peerCredentials(fd)
        if let peer, policy.admits(uid: peer.uid, gid: peer.gid) { return true }
        refusedPeerConnections += 1
        if let suppressed = refusalLog.admit("front.client_refused") {
            logger.warning(
                "front.client_refused",
                metadata: [
                    "peer_uid": "\(peer.map { "\($0.uid)" } ?? "unknown")",
                    "peer_gid": "\(peer.map { "\($0.gid)" } ?? "unknown")",
                    "peer_pid": "\(peer.map { "\($0.pid)" } ?? "unknown")",
                    "allowed_uid": "\(policy.uid.map { "\($0)" } ?? "any")",
                    "allowed_gid": "\(policy.gid.map { "\($0)" } ?? "any")", "suppressed": "\(suppressed)",
                ])
        }
        return false
    }

    func connectionClosed(_ connection: HTTP2Connection) {
        connections[connection.id] = nil
        logger.debug("front.connection_closed", metadata: ["connection": "\(connection.id)"])
        if draining && connections.isEmpty { onDrained?() }
    }
}
