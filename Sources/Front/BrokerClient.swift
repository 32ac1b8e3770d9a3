import KMSCore
import KMSRuntime
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// The front's end of broker protocol v1: one connected SOCK_SEQPACKET socket, one packet per
/// message. It sends HELLO first, checks every packet the broker sends (header, direction,
/// request id, answer type; see `BrokerRequestTable`) and reports anything malformed as fatal:
/// the front does not try to resynchronise with a confused broker.
final class BrokerClient {
    enum State: Equatable {
        /// HELLO sent, answer not yet received.
        case awaitingHello
        /// HELLO answered; `maxInFlight` is the broker's limit for this connection.
        case ready(maxInFlight: Int)
        case failed
    }

    private(set) var state: State = .awaitingHello
    /// The connection; -1 before the first connect in the split topologies.
    private(set) var fd: Int32
    private unowned let loop: EventLoop
    private let logger: Logger
    private var table = BrokerRequestTable()
    /// Packets the socket had no room for (EAGAIN), sent in order when it becomes writable.
    private var queue: [[UInt8]] = []
    private var queueHead = 0

    /// The broker answered HELLO with `ok`.
    var onReady: ((HelloAnswer) -> Void)?
    /// An answer to a request issued by `send`, decoded and checked against its request.
    var onAnswer: ((UInt32, BrokerAnswer) -> Void)?
    /// The connection is unusable (closed, malformed packet, refused HELLO): one reason to log.
    var onFailure: ((String) -> Void)?

    /// Adopts a connected SOCK_SEQPACKET socket (made non-blocking and close-on-exec here).
    /// `fd` -1: not connected yet (state `failed` until `reconnect`).
    init(fd: Int32, loop: EventLoop, logger: Logger) {
        self.fd = fd
        self.loop = loop
        self.logger = logger
        if fd < 0 { state = .failed }
    }

    /// Split topologies: replaces a failed (or never made) connection with `newFD` and sends
    /// HELLO on it. Requests outstanding on the old connection are forgotten; their calls were
    /// already answered UNAVAILABLE.
    func reconnect(fd newFD: Int32, frontVersion: String) throws(SystemError) {
        if fd >= 0 {
            loop.unregister(fd: fd)
            close(fd)
        }
        fd = newFD
        table.forgetAll()
        queue.removeAll()
        queueHead = 0
        state = .awaitingHello
        try start(frontVersion: frontVersion)
    }

    /// Starts reading and sends HELLO (the front's readiness report in the spawn topology).
    func start(frontVersion: String) throws(SystemError) {
        try UnixSocket.setNonBlocking(fd)
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        try loop.register(fd: fd, events: .readable) { [unowned self] events in self.handle(events) }
        let hello = BrokerRequest.hello(HelloRequest(frontVersion: frontVersion))
        transmit(hello.encode(requestID: table.issue(hello.type)))
    }

    /// Sends a request; nil when not ready or at the broker's in-flight limit (which counts the
    /// requests of calls already gone, until the broker answers them or they are forgotten).
    func send(_ request: BrokerRequest) -> UInt32? {
        guard case .ready(let maxInFlight) = state, table.count < maxInFlight else { return nil }
        let id = table.issue(request.type)
        transmit(request.encode(requestID: id))
        return id
    }

    /// Stops waiting for the answer to `id` (its call is long gone; see BrokerRequestTable).
    func forget(_ id: UInt32) { table.forget(id) }

    /// Reports a broker protocol violation found by a caller (e.g. an answer payload that does
    /// not decode).
    func fail(_ reason: String) {
        guard state != .failed else { return }
        state = .failed
        loop.unregister(fd: fd)
        onFailure?(reason)
    }

    // MARK: Sending

    private func transmit(_ packet: [UInt8]) {
        guard queueHead == queue.count else {
            queue.append(packet)
            return
        }
        switch sendPacket(packet) {
        case .sent: break
        case .wouldBlock:
            queue.append(packet)
            loop.modify(fd: fd, events: [.readable, .writable])
        case .failed(let reason): fail(reason)
        }
    }

    private enum SendResult {
        case sent
        case wouldBlock
        case failed(String)
    }

    private func sendPacket(_ packet: [UInt8]) -> SendResult {
        while true {
            let sent = packet.withUnsafeBytes {
                Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
            }
            if sent == packet.count { return .sent }
            if sent >= 0 { return .failed("short send to broker") }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { return .wouldBlock }
            return .failed("send to broker: \(SystemError("send"))")
        }
    }

    private func drainQueue() {
        while queueHead < queue.count {
            switch sendPacket(queue[queueHead]) {
            case .sent: queueHead += 1
            case .wouldBlock: return
            case .failed(let reason): return fail(reason)
            }
        }
        queue.removeAll()
        queueHead = 0
        loop.modify(fd: fd, events: .readable)
    }

    // MARK: Receiving

    private func handle(_ events: EventLoop.Events) {
        if events.contains(.writable) { drainQueue() }
        guard state != .failed else { return }
        if !events.isDisjoint(with: [.readable, .hangup, .error]) { receiveAvailable() }
    }

    private func receiveAvailable() {
        while state != .failed {
            switch UnixSocket.receivePacket(fd, limit: Limits.maxBrokerPacketBytes) {
            case .wouldBlock: return
            case .closed: return fail("broker closed the connection")
            case .oversized(let size): return fail("oversized broker packet (\(size) bytes)")
            case .packet(let packet): dispatch(packet)
            }
        }
    }

    private func dispatch(_ packet: [UInt8]) {
        let frame: BrokerFrame
        do throws(BrokerProtocolError) {
            frame = try BrokerFrame.decode(packet)
        } catch {
            return fail("malformed broker packet: \(error)")
        }
        switch table.accept(type: frame.type, requestID: frame.requestID) {
        case .violation(let reason): fail(reason)
        case .late: logger.debug("broker.late_answer", metadata: ["request_id": "\(frame.requestID)"])
        case .deliver(let request):
            // Decoded even when its call is gone: a malformed answer is a protocol error.
            let answer: BrokerAnswer
            do throws(BrokerProtocolError) {
                answer = try BrokerAnswer.decode(frame, answering: request)
            } catch {
                return fail("malformed \(frame.type) answer: \(error)")
            }
            if case .hello(let hello) = answer { return helloAnswered(hello) }
            onAnswer?(frame.requestID, answer)
        }
    }

    private func helloAnswered(_ answer: HelloAnswer) {
        guard answer.code == .ok else { return fail("broker refused HELLO: \(answer.code)") }
        let limit = answer.maxInFlight == 0 ? Limits.maxInFlightPerFront : Int(answer.maxInFlight)
        state = .ready(maxInFlight: min(limit, Limits.maxInFlightPerFront))
        onReady?(answer)
    }
}
