/// The systemd service-manager protocol beyond READY=1: `WATCHDOG=1` keep-alives from the event
/// loop, and `STATUS=` lines that follow a health reason. Without `NOTIFY_SOCKET` every send is
/// a no-op (`SystemdNotify`), so both processes install these unconditionally.
public final class SystemdWatchdog {
    /// How often the loop pets the watchdog: half of `WATCHDOG_USEC`, so one late turn is not fatal.
    public let intervalMillis: Int64
    private unowned let loop: EventLoop
    private let send: (String) -> Void
    private var stopped = false

    /// Starts petting when systemd asked for a watchdog (`WATCHDOG_USEC`, `WATCHDOG_PID`);
    /// returns nil otherwise. The keep-alive is sent from a loop timer, so it stops when the loop
    /// wedges, which is what the watchdog is for.
    public static func start(on loop: EventLoop, send: @escaping (String) -> Void = { SystemdNotify.send($0) })
        -> SystemdWatchdog?
    {
        guard let micros = SystemdNotify.watchdogMicros() else { return nil }
        let watchdog = SystemdWatchdog(loop: loop, watchdogMicros: micros, send: send)
        watchdog.pet()
        return watchdog
    }

    init(loop: EventLoop, watchdogMicros: UInt64, send: @escaping (String) -> Void) {
        self.loop = loop
        self.intervalMillis = Self.petInterval(watchdogMicros: watchdogMicros)
        self.send = send
    }

    /// Half the watchdog interval, at least 1 ms.
    static func petInterval(watchdogMicros: UInt64) -> Int64 { max(1, Int64(watchdogMicros / 2_000)) }

    /// Sends WATCHDOG=1 now and again every `intervalMillis` until `stop()`.
    func pet() {
        guard !stopped else { return }
        send("WATCHDOG=1")
        loop.schedule(afterMillis: intervalMillis) { [weak self] in self?.pet() }
    }

    public func stop() { stopped = true }
}

/// Sends `STATUS=<reason>` whenever the reported reason changes (not on every check).
public final class SystemdStatus {
    private let send: (String) -> Void
    /// The last reason sent, nil before the first.
    public private(set) var lastReason: String?

    public init(send: @escaping (String) -> Void = { SystemdNotify.send($0) }) { self.send = send }

    /// Reports `reason` if it differs from the last one; returns whether a line was sent.
    @discardableResult
    public func report(_ reason: String) -> Bool {
        guard reason != lastReason else { return false }
        lastReason = reason
        send("STATUS=\(Self.sanitized(reason))")
        return true
    }

    /// One line: newlines would start a new notify assignment.
    static func sanitized(_ reason: String) -> String {
        String(reason.map { $0 == "\n" || $0 == "\r" ? " " : $0 })
    }
}
