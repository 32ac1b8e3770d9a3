import CLinux  // kms_linux.h: epoll and signalfd declarations

#if canImport(Glibc)
    import Glibc
#endif

/// A single-threaded epoll event loop with timers and signals (signalfd). Both processes run
/// exactly one of these on their main thread: no thread pools, no locks (DESIGN section 3).
public final class EventLoop {
    public struct Events: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let readable = Events(rawValue: EPOLLIN.rawValue)
        public static let writable = Events(rawValue: EPOLLOUT.rawValue)
        public static let hangup = Events(rawValue: EPOLLHUP.rawValue)
        public static let error = Events(rawValue: EPOLLERR.rawValue)
        public static let peerClosed = Events(rawValue: EPOLLRDHUP.rawValue)
    }

    public typealias Handler = (Events) -> Void
    public struct TimerID: Hashable, Sendable { let raw: UInt64 }

    private let epollFD: Int32
    private var handlers: [Int32: Handler] = [:]
    private var timers = TimerHeap()
    private var timerActions: [UInt64: () -> Void] = [:]
    private var nextTimerID: UInt64 = 1
    private var signalFD: Int32 = -1
    private var signalHandler: ((Int32) -> Void)?
    private var running = false
    /// Called once per loop turn (for the systemd watchdog and housekeeping).
    public var onTurn: (() -> Void)?

    public init() throws(SystemError) {
        epollFD = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epollFD >= 0 else { throw SystemError("epoll_create1") }
    }

    deinit {
        close(epollFD)
        if signalFD >= 0 { close(signalFD) }
    }

    /// Monotonic milliseconds.
    public static func nowMillis() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    /// Monotonic nanoseconds, for durations.
    public static func nowNanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    public func register(fd: Int32, events: Events, handler: @escaping Handler) throws(SystemError) {
        var event = epoll_event()
        event.events = events.rawValue
        event.data.fd = fd
        guard epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &event) == 0 else { throw SystemError("epoll_ctl(ADD)") }
        handlers[fd] = handler
    }

    public func modify(fd: Int32, events: Events) {
        var event = epoll_event()
        event.events = events.rawValue
        event.data.fd = fd
        _ = epoll_ctl(epollFD, EPOLL_CTL_MOD, fd, &event)
    }

    /// Stops watching `fd`. The caller still owns and closes it.
    public func unregister(fd: Int32) {
        guard handlers.removeValue(forKey: fd) != nil else { return }
        var event = epoll_event()
        _ = epoll_ctl(epollFD, EPOLL_CTL_DEL, fd, &event)
    }

    public func isRegistered(fd: Int32) -> Bool { handlers[fd] != nil }

    /// Runs `action` once, `millis` from now.
    @discardableResult
    public func schedule(afterMillis millis: Int64, _ action: @escaping () -> Void) -> TimerID {
        let id = nextTimerID
        nextTimerID += 1
        timers.push(deadline: Self.nowMillis() + max(0, millis), id: id)
        timerActions[id] = action
        return TimerID(raw: id)
    }

    public func cancel(_ timer: TimerID) { timerActions[timer.raw] = nil }

    /// Routes the given signals to `handler` through a signalfd (they are blocked for the thread).
    public func handleSignals(_ signals: [Int32], handler: @escaping (Int32) -> Void) throws(SystemError) {
        var mask = sigset_t()
        sigemptyset(&mask)
        for signal in signals { sigaddset(&mask, signal) }
        guard pthread_sigmask(SIG_BLOCK, &mask, nil) == 0 else { throw SystemError("pthread_sigmask") }
        let fd = signalfd(-1, &mask, Int32(SFD_CLOEXEC | SFD_NONBLOCK))
        guard fd >= 0 else { throw SystemError("signalfd") }
        signalFD = fd
        signalHandler = handler
        try register(fd: fd, events: .readable) { [unowned self] _ in self.drainSignals() }
    }

    private func drainSignals() {
        var info = signalfd_siginfo()
        while read(signalFD, &info, MemoryLayout<signalfd_siginfo>.size) == MemoryLayout<signalfd_siginfo>.size {
            signalHandler?(Int32(info.ssi_signo))
        }
    }

    public func stop() { running = false }

    /// Runs until `stop()` is called.
    public func run() {
        running = true
        var events = [epoll_event](repeating: epoll_event(), count: 64)
        while running {
            let timeout = runDueTimers()
            guard running else { break }
            let count = events.withUnsafeMutableBufferPointer { buffer in
                epoll_wait(epollFD, buffer.baseAddress, Int32(buffer.count), timeout)
            }
            if count < 0 {
                if errno == EINTR { continue }
                break
            }
            for index in 0..<Int(count) {
                let fd = events[index].data.fd
                // A handler may have unregistered another fd earlier in this batch.
                guard let handler = handlers[fd] else { continue }
                handler(Events(rawValue: events[index].events))
            }
            onTurn?()
        }
    }

    /// Fires due timers; returns the epoll timeout until the next one (-1 for none).
    private func runDueTimers() -> Int32 {
        while let next = timers.peek() {
            if timerActions[next.id] == nil {
                _ = timers.pop()
                continue
            }
            let now = Self.nowMillis()
            if next.deadline > now { return Int32(clamping: next.deadline - now) }
            _ = timers.pop()
            if let action = timerActions.removeValue(forKey: next.id) { action() }
        }
        return -1
    }
}

/// A binary min-heap of (deadline, id); cancelled entries are skipped lazily.
struct TimerHeap {
    private var items: [(deadline: Int64, id: UInt64)] = []

    func peek() -> (deadline: Int64, id: UInt64)? { items.first }

    mutating func push(deadline: Int64, id: UInt64) {
        items.append((deadline, id))
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard less(child, parent) else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> (deadline: Int64, id: UInt64)? {
        guard !items.isEmpty else { return nil }
        items.swapAt(0, items.count - 1)
        let top = items.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < items.count && less(left, smallest) { smallest = left }
            if right < items.count && less(right, smallest) { smallest = right }
            guard smallest != parent else { break }
            items.swapAt(parent, smallest)
            parent = smallest
        }
        return top
    }

    private func less(_ a: Int, _ b: Int) -> Bool {
        items[a].deadline < items[b].deadline || (items[a].deadline == items[b].deadline && items[a].id < items[b].id)
    }
}
