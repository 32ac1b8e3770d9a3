import KMSCore
import KMSRuntime
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// One connected front on a SOCK_SEQPACKET socket. Reads packets, runs each through the dispatch
/// table, and writes answers. Any protocol violation logs one `broker.reject` line and closes
/// this connection (and only this one).
final class FrontConnection {
    /// Packets handled per readable event before yielding to the rest of the loop.
    static let maxPacketsPerTurn = 64
    /// Answers waiting for the socket to become writable. A front that stops reading its answers
    /// while sending requests is dropped when this fills up.
    static let maxQueuedAnswers = 2 * Limits.maxInFlightPerFront

    let fd: Int32
    let serial: UInt64
    private let loop: EventLoop
    private let logger: Logger
    private unowned let service: BrokerService
    private let onHello: () -> Void
    private let onClose: () -> Void

    private(set) var state: FrontState = .awaitingHello
    private var seenOnce: Set<BrokerMessageType> = []
    /// Requests waiting for Vault (or for a key refresh) on this connection.
    private(set) var inFlight = 0
    private(set) var isOpen = true
    private var queuedAnswers: SeqpacketChannel

    init(
        fd: Int32, serial: UInt64, loop: EventLoop, logger: Logger, service: BrokerService,
        onHello: @escaping () -> Void, onClose: @escaping () -> Void
    ) {
        self.fd = fd
        queuedAnswers = SeqpacketChannel(fd: fd, limit: Self.maxQueuedAnswers)
        self.serial = serial
        self.loop = loop
        self.logger = logger
        self.service = service
        self.onHello = onHello
        self.onClose = onClose
    }

    func start(helloTimeoutMillis: Int64? = nil) throws(SystemError) {
        try UnixSocket.setNonBlocking(fd)
        try loop.register(fd: fd, events: [.readable, .peerClosed]) { [weak self] events in self?.ready(events) }
        // A peer that never says HELLO must not hold one of the few connection slots.
        if let helloTimeoutMillis {
            loop.schedule(afterMillis: helloTimeoutMillis) { [weak self] in
                guard let self, self.isOpen, self.state == .awaitingHello else { return }
                self.logger.warning(
                    "broker.front.hello_timeout",
                    metadata: ["connection": "\(self.serial)", "timeout_ms": "\(helloTimeoutMillis)"])
                self.close(reason: nil)
            }
        }
    }

    // MARK: input

    private func ready(_ events: EventLoop.Events) {
        if events.contains(.writable) { flush() }
        guard isOpen else { return }
        guard reading else {
            if !events.intersection([.hangup, .error]).isEmpty { close(reason: "front closed the connection") }
            return
        }
        if !events.intersection([.readable, .hangup, .error, .peerClosed]).isEmpty { readPackets() }
    }

    /// Requests are read (false once the broker is shutting down).
    private var reading = true
    private var readEvents: EventLoop.Events { reading ? [.readable, .peerClosed] : [] }

    /// Shutdown: answers still go out, but no request is read any more. A split front then sees
    /// the connection close when the broker exits, with its unanswered requests still its own,
    /// and sends them to the next broker (Sources/Front/GRPCServer+BrokerWait.swift) instead of
    /// getting "not ready" from this one.
    func stopReading() {
        guard isOpen, reading else { return }
        reading = false
        loop.modify(fd: fd, events: queuedAnswers.isEmpty ? readEvents : readEvents.union(.writable))
    }

    private func readPackets() {
        for _ in 0..<Self.maxPacketsPerTurn {
            guard isOpen else { return }
            switch UnixSocket.receivePacket(fd, limit: Limits.maxBrokerPacketBytes) {
            case .packet(let packet): handle(packet)
            case .oversized(let size): return reject(reason: BrokerProtocolError.oversized(size).description, type: "-")
            case .wouldBlock: return
            case .closed: return close(reason: "front closed the connection")
            }
        }
    }

    private func handle(_ packet: [UInt8]) {
        switch DispatchTable.admit(packet: packet, state: state, seen: seenOnce) {
        case .reject(let reason, let type):
            reject(reason: reason, type: type)
        case .admit(let requestID, let request, let rule):
            if rule.onceOnly { seenOnce.insert(request.type) }
            service.handle(request, from: self, requestID: requestID)
        }
    }

    // MARK: state changes requested by handlers

    func becomeReady() {
        guard state == .awaitingHello else { return }
        state = .ready
        onHello()
    }

    /// Takes an in-flight slot for a request that waits for Vault; false when all
    /// `Limits.maxInFlightPerFront` slots are taken (the handler answers `.tooManyRequests`).
    func beginVaultRequest() -> Bool {
        guard inFlight < Limits.maxInFlightPerFront else { return false }
        inFlight += 1
        return true
    }

    func endVaultRequest() { inFlight = max(0, inFlight - 1) }

    // MARK: output

    /// Sends the answer to request `requestID`. Dropped silently if the connection has been
    /// closed meanwhile.
    func answer(_ requestID: UInt32, _ answer: BrokerAnswer) {
        guard isOpen else { return }
        let answerType = answer.type
        let packet = answer.encode(requestID: requestID)
        switch queuedAnswers.send(packet) {
        case .sent: return
        case .queued: loop.modify(fd: fd, events: readEvents.union(.writable))
        case .full: reject(reason: "front is not reading its answers", type: "\(answerType)")
        case .failed(let failure): close(reason: "send failed: \(failure)")
        }
    }

    private func flush() {
        if let failure = queuedAnswers.flush() { return close(reason: "send failed: \(failure)") }
        if queuedAnswers.isEmpty { loop.modify(fd: fd, events: readEvents) }
    }

    // MARK: closing

    private func reject(reason: String, type: String) {
        logger.warning(
            "broker.reject", metadata: ["reason": "\(reason)", "type": "\(type)", "connection": "\(serial)"])
        close(reason: nil)
    }

    func close(reason: String?) {
        guard isOpen else { return }
        isOpen = false
        if let reason {
            logger.info("broker.front.closed", metadata: ["reason": "\(reason)", "connection": "\(serial)"])
        }
        loop.unregister(fd: fd)
        Glibc.close(fd)
        queuedAnswers.reset(fd: -1)
        onClose()
        service.connectionClosed(self)
    }
}
