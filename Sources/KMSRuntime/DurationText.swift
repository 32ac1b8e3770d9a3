/// The one duration codec: Go's `time.ParseDuration` subset the HashiCorp plugin and Vault use
/// (`250ms`, `30s`, `5m`, `1h`, combinations like `1m30s`; a bare `0`), for command-line flags
/// and Vault's TTL strings, and the text the reports print.
public enum DurationText {
    /// The longest duration a flag accepts.
    public static let maxFlagMillis: Int64 = 24 * 3_600_000

    /// Milliseconds for `text`, or nil when it is not a sequence of whole numbers each followed by
    /// `ms`, `s`, `m` or `h` (or a bare `0`), or does not fit in 64 bits.
    public static func milliseconds(_ text: String) -> Int64? {
        if text == "0" { return 0 }
        var total: Int64 = 0
        var rest = Substring(text)
        guard !rest.isEmpty else { return nil }
        while !rest.isEmpty {
            let digits = rest.prefix(while: { $0.isASCII && $0.isNumber })
            guard !digits.isEmpty, digits.count <= 18, let number = Int64(digits) else { return nil }
            rest = rest.dropFirst(digits.count)
            let unit = rest.prefix(while: { $0.isASCII && $0.isLetter })
            rest = rest.dropFirst(unit.count)
            let scale: Int64
            switch unit {
            case "ms": scale = 1
            case "s": scale = 1000
            case "m": scale = 60_000
            case "h": scale = 3_600_000
            default: return nil
            }
            let (part, overflowPart) = number.multipliedReportingOverflow(by: scale)
            let (sum, overflowSum) = total.addingReportingOverflow(part)
            guard !overflowPart, !overflowSum else { return nil }
            total = sum
        }
        return total
    }

    /// Milliseconds for a flag's `text`; throws a message naming `flag` when it is not a positive
    /// duration of at most 24 hours.
    public static func millis(_ text: String, flag: String) throws(ConfigurationError) -> Int {
        guard let total = milliseconds(text), total > 0, total <= maxFlagMillis else {
            throw ConfigurationError(
                "--\(flag) must be a duration like 250ms, 30s, 5m or 1h (got \(text.debugDescription))")
        }
        return Int(total)
    }

    /// Whole seconds for one of Vault's TTL strings (`768h`, `1h30m`, `0s`); nil when malformed.
    public static func seconds(_ text: String) -> Int64? { milliseconds(text).map { $0 / 1000 } }

    /// `30d` for whole days, else Go's style: `47h59m59s`, `90m` -> `1h30m`, `0s`.
    public static func text(seconds: Int64) -> String {
        if seconds % 86400 == 0 && seconds >= 86400 { return "\(seconds / 86400)d" }
        var text = ""
        if seconds >= 3600 { text += "\(seconds / 3600)h" }
        if seconds % 3600 >= 60 { text += "\(seconds % 3600 / 60)m" }
        if seconds % 60 != 0 || seconds == 0 { text += "\(seconds % 60)s" }
        return text
    }
}
