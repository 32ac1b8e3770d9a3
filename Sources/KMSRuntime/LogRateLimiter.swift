/// Repetitive log lines (refused peers, refused calls) at most once per interval and key: a
/// local user must not be able to fill the journal, and the line that is written says how many
/// were left out since the last one. Keys are fixed event names, so the table stays small.
public final class LogRateLimiter {
    public let intervalMillis: Int64
    private var lastLogged: [String: Int64] = [:]
    private var suppressed: [String: Int] = [:]

    public init(intervalMillis: Int64 = 10_000) {
        self.intervalMillis = intervalMillis
    }

    /// nil: leave this line out. Else log it, with the returned count of lines left out before it.
    public func admit(_ key: String, now: Int64 = EventLoop.nowMillis()) -> Int? {
        if let last = lastLogged[key], now - last < intervalMillis {
            suppressed[key, default: 0] += 1
            return nil
        }
        lastLogged[key] = now
        return suppressed.removeValue(forKey: key) ?? 0
    }
}
