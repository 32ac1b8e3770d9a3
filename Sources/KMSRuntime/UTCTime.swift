#if canImport(Glibc)
    import Glibc
#endif

/// Wall-clock times as RFC 3339 UTC text, for logs and health reasons.
public enum UTCTime {
    /// The time `offsetMillis` from now, e.g. `2026-12-04T18:52:03.120Z` (`withMillis: false`
    /// drops the fraction).
    public static func rfc3339(offsetMillis: Int64 = 0, withMillis: Bool = true) -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        let total = Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec / 1_000_000) + offsetMillis
        var seconds = time_t(total / 1000)
        let millis = Int32(total % 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        let base =
            "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2))"
        return withMillis ? base + ".\(pad(millis, 3))Z" : base + "Z"
    }
}
