import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// The one accept loop of both processes: the front's KMS socket, the front's health port and the
/// split broker's socket each own an `Acceptor` on the shared `EventLoop`.
///
/// - Readiness is level-triggered: on each wake-up it accepts until `EAGAIN`; `EINTR` and
///   `ECONNABORTED` (a client that gave up in the backlog) are retried.
/// - Out of descriptors or kernel memory (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`), it stops
///   polling the listener for `backoffMillis` and logs `pausedEvent` once per pause: a
///   level-triggered listener that cannot be drained would otherwise spin the loop.
/// - Every accepted descriptor is close-on-exec and non-blocking before the handler sees it
///   (`accept4` is not exported by the Glibc module; neither process execs while serving, so
///   setting the flag after `accept` leaves no window that matters).
/// - `stop()` stops accepting and cancels a pending resume; the descriptor stays the owner's.
public final class Acceptor {
    public static let defaultBackoffMillis: Int64 = 1_000

    public let fd: Int32
    private unowned let loop: EventLoop
    private let logger: Logger
    private let pausedEvent: String
    private let failedEvent: String
    private let backoffMillis: Int64
    private let onConnection: (Int32) -> Void
    private var resume: EventLoop.TimerID?
    /// Accepting: started and not stopped (a pause does not clear it).
    public private(set) var isAccepting = false
    /// Pauses taken so far (descriptor or memory exhaustion).
    public private(set) var pauses: UInt64 = 0
    /// accept(2); tests replace it to produce the errors a test process cannot safely provoke
    /// (EMFILE for the whole process).
    var acceptCall: (Int32) -> Int32 = { accept($0, nil, nil) }

    /// `pausedEvent` and `failedEvent` are the log events of this listener (the operator
    /// documents name them per socket, docs/troubleshooting.md).
    public init(
        fd: Int32, loop: EventLoop, logger: Logger, pausedEvent: String, failedEvent: String,
        backoffMillis: Int64 = Acceptor.defaultBackoffMillis, onConnection: @escaping (Int32) -> Void
    ) {
        self.fd = fd
        self.loop = loop
        self.logger = logger
        self.pausedEvent = pausedEvent
        self.failedEvent = failedEvent
        self.backoffMillis = backoffMillis
        self.onConnection = onConnection
    }

    /// Makes the listener non-blocking and starts polling it.
    public func start() throws(SystemError) {
        guard !isAccepting else { return }
        try UnixSocket.setNonBlocking(fd)
        try watch()
        isAccepting = true
    }

    /// Stops polling the listener; it is not closed.
    public func stop() {
        guard isAccepting else { return }
        isAccepting = false
        if let resume { loop.cancel(resume) }
        resume = nil
        loop.unregister(fd: fd)
    }

    private func watch() throws(SystemError) {
        try loop.register(fd: fd, events: .readable) { [unowned self] _ in self.acceptAvailable() }
    }

    private func acceptAvailable() {
        while isAccepting && resume == nil {
            let connection = acceptCall(fd)
            guard connection >= 0 else {
                switch errno {
                case EINTR, ECONNABORTED: continue
                case EAGAIN, EWOULDBLOCK: return
                case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                    logger.warning("\(pausedEvent)", metadata: ["error": "\(SystemError("accept"))"])
                    pause()
                    return
                default:
                    logger.error("\(failedEvent)", metadata: ["error": "\(SystemError("accept"))"])
                    return
                }
            }
            _ = fcntl(connection, F_SETFD, FD_CLOEXEC)
            _ = fcntl(connection, F_SETFL, fcntl(connection, F_GETFL) | O_NONBLOCK)
            onConnection(connection)
        }
    }

    private func pause() {
        pauses += 1
        loop.unregister(fd: fd)
        resume = loop.schedule(afterMillis: backoffMillis) { [weak self] in
            guard let self, self.isAccepting else { return }
            self.resume = nil
            do {
                try self.watch()
            } catch {
                self.logger.error("\(self.failedEvent)", metadata: ["error": "\(error)"])
            }
        }
    }
}
