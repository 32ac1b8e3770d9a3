/// Runs an action every `intervalMillis` on an event loop until stopped: the shape shared by the
/// broker's background probes. The first run is one interval after `start()`.
public final class RepeatingTimer {
    private let loop: EventLoop
    private let intervalMillis: Int64
    private let action: () -> Void
    private var timer: EventLoop.TimerID?
    public private(set) var isStopped = false

    public init(loop: EventLoop, intervalMillis: Int, action: @escaping () -> Void) {
        self.loop = loop
        self.intervalMillis = Int64(intervalMillis)
        self.action = action
    }

    /// Arms the next run (a no-op once stopped, or while a run is already armed).
    public func start() {
        guard !isStopped, timer == nil else { return }
        timer = loop.schedule(afterMillis: intervalMillis) { [weak self] in
            guard let self else { return }
            self.timer = nil
            self.action()
            self.start()
        }
    }

    /// Cancels the pending run; `start()` does nothing afterwards.
    public func stop() {
        isStopped = true
        if let timer { loop.cancel(timer) }
        timer = nil
    }
}
