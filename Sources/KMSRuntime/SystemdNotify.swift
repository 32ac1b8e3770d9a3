import CSystemd

/// sd_notify wrapper. Without NOTIFY_SOCKET every call is a no-op, so both processes call it
/// unconditionally. The state strings are systemd's (READY=1, STATUS=..., WATCHDOG=1, STOPPING=1).
public enum SystemdNotify {
    @discardableResult
    public static func send(_ state: String) -> Bool {
        sd_notify(0, state) > 0
    }

    /// The watchdog interval in microseconds if systemd asked for keep-alives, else nil.
    public static func watchdogMicros() -> UInt64? {
        var usec: UInt64 = 0
        return sd_watchdog_enabled(0, &usec) > 0 ? usec : nil
    }
}
