import KMSCore
import KMSRuntime
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// The front's end of broker protocol v1: one connected SOCK_SEQPACKET socket, one packet per
/// message, and the one way the front asks the broker anything: `send(request, deadline)` with a
/// completion, called once, with the answer or why there is none (the shape of the broker's
/// `TransitClient`). It owns request ids, deadlines and late answers (`BrokerCalls`). It sends
/// HELLO first, checks every packet the broker sends (header, direction, request id, the answer
/// type paired with the request, the payload) and reports anything malformed as fatal: the front
/// does not try to resynchronise with a confused broker.
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
    private let calls: BrokerCalls
    /// Packets the socket had no room for (EAGAIN), sent in order when it becomes writable.
    private var outbox: SeqpacketChannel

    /// The broker answered HELLO with `ok`.
    var onReady: ((HelloAnswer) -> Void)?
    /// The connection is unusable (closed, malformed packet, refused HELLO): one reason to log.
    /// Called before the requests outstanding on it complete with `connectionLost`.
    var onFailure: ((String) -> Void)?

    /// Adopts a connected SOCK_SEQPACKET socket (made non-blocking and close-on-exec here).
    /// `fd` -1: not connected yet (state `failed` until `reconnect`).
    /// `firstRequestID` other than 1 only in tests (to reach the wrap-around).
    init(fd: Int32, loop: EventLoop, logger: Logger, firstRequestID: UInt32 = 1) {
        self.fd = fd
        outbox = SeqpacketChannel(fd: fd)
        self.loop = loop
        self.logger = logger
        calls = BrokerCalls(loop: loop, logger: logger, firstID: firstRequestID)
        if fd < 0 { state = .failed }
    }

    /// Split topologies: replaces a failed (or never made) connection with `newFD` and sends
    /// HELLO on it. Requests still outstanding on the old connection complete `connectionLost`.
    func reconnect(fd newFD: Int32, frontVersion: String) throws(SystemError) {
        if fd >= 0 {
            loop.unregister(fd: fd)
            close(fd)
        }
        fd = newFD
        for completion in calls.removeAll() { completion(.failure(.connectionLost)) }
        outbox.reset(fd: newFD)
        state = .awaitingHello
        try start(frontVersion: frontVersion)
    }

    /// Starts reading and sends HELLO (the front's readiness report in the spawn topology).
    func start(frontVersion: String) throws(SystemError) {
        try UnixSocket.setNonBlocking(fd)
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        try loop.register(fd: fd, events: .readable) { [unowned self] events in self.handle(events) }
        let hello = BrokerRequest.hello(HelloRequest(frontVersion: frontVersion))
        let id = calls.issue(hello.type, deadlineMillis: nil) { [unowned self] result in
            if case .success(.hello(let answer)) = result { self.helloAnswered(answer) }
        }
        transmit(hello.encode(requestID: id))
    }

    /// Sends `request` and calls `completion` once: with the broker's answer (decoded and
    /// checked against the request), or `deadlineExceeded` at `deadlineMillis` (monotonic,
    /// `EventLoop.nowMillis`), or `connectionLost`; at once with `notReady` before HELLO is
    /// answered, or `tooManyRequests` at the broker's in-flight limit (which counts the requests
    /// of callers already gone, until the broker answers them or they are forgotten). Returns the
    /// request id for `cancel`, nil when refused at once.
    @discardableResult
    func send(
        _ request: BrokerRequest, deadlineMillis: Int64, completion: @escaping BrokerCalls.Completion
    ) -> UInt32? {
        guard case .ready(let maxInFlight) = state else {
            completion(.failure(.notReady))
            return nil
        }
        guard calls.count < maxInFlight else {
            completion(.failure(.tooManyRequests))
            return nil
        }
        let id = calls.issue(request.type, deadlineMillis: deadlineMillis, completion: completion)
        transmit(request.encode(requestID: id))
        return id
    }

    /// The caller no longer waits for request `id` (its client went away): its completion is not
    /// called; the answer, if it comes, is checked and dropped.
    func cancel(_ id: UInt32) { calls.cancel(id) }

    /// The connection is unusable: `onFailure`, then every outstanding request completes
    /// `connectionLost`.
    func fail(_ reason: String) {
        guard state != .failed else { return }
        state = .failed
        loop.unregister(fd: fd)
        onFailure?(reason)
        for completion in calls.removeAll() { completion(.failure(.connectionLost)) }
    }

    // MARK: Sending

    private func transmit(_ packet: [UInt8]) {
        switch outbox.send(packet) {
        case .sent: break
        case .queued: loop.modify(fd: fd, events: [.readable, .writable])
        case .full: break  // no limit on this side: the broker reads what it was sent
        case .failed(let failure): fail(Self.sendFailure(failure))
        }
    }

    private static func sendFailure(_ failure: SeqpacketChannel.Failure) -> String {
        if case .shortSend = failure { return "short send to broker" }
        return "send to broker: \(failure)"
    }

    private func drainQueue() {
        if let failure = outbox.flush() { return fail(Self.sendFailure(failure)) }
        if outbox.isEmpty { loop.modify(fd: fd, events: .readable) }
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
        switch calls.accept(frame) {
        case .violation(let reason): fail(reason)
        case .late, .deliver(_, completion: nil):
            logger.debug("broker.late_answer", metadata: ["request_id": "\(frame.requestID)"])
        case .deliver(let answer, completion: let completion?): completion(.success(answer))
        }
    }

    private func helloAnswered(_ answer: HelloAnswer) {
        guard answer.code == .ok else { return fail("broker refused HELLO: \(answer.code)") }
        let limit = answer.maxInFlight == 0 ? Limits.maxInFlightPerFront : Int(answer.maxInFlight)
        state = .ready(maxInFlight: min(limit, Limits.maxInFlightPerFront))
        onReady?(answer)
    }
}
