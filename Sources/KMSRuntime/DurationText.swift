/// Durations as operators write them on the command line: `250ms`, `30s`, `5m`, `1h`, or a
/// combination like `1m30s` (Go's `time.ParseDuration` subset the HashiCorp plugin accepts).
public enum DurationText {
    /// Milliseconds for `text`; throws a message naming `flag` when it is not a positive duration.
    public static func millis(_ text: String, flag: String) throws(ConfigurationError) -> Int {
        let invalid = ConfigurationError(
            "--\(flag) must be a duration like 250ms, 30s, 5m or 1h (got \(text.debugDescription))")
        var total = 0
        var rest = Substring(text)
        guard !rest.isEmpty else { throw invalid }
        while !rest.isEmpty {
            let digits = rest.prefix(while: { $0.isASCII && $0.isNumber })
            guard !digits.isEmpty, digits.count <= 9, let number = Int(digits) else { throw invalid }
            rest = rest.dropFirst(digits.count)
            let unit = rest.prefix(while: { $0.isASCII && $0.isLetter })
            rest = rest.dropFirst(unit.count)
            let scale: Int
            switch unit {
            case "ms": scale = 1
            case "s": scale = 1000
            case "m": scale = 60_000
            case "h": scale = 3_600_000
            default: throw invalid
            }
            total += number * scale
            guard total <= 24 * 3_600_000 else { throw invalid }
        }
        guard total > 0 else { throw invalid }
        return total
    }
}
