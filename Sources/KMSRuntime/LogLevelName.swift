import Logging

/// Log level names as operators write them: swift-log's own (`trace` ... `critical`) and the
/// zap spellings HashiCorp's plugin documents for `--zap-log-level` (controller-runtime's zap
/// flag): `debug`, `info`, `warn`, `error`, `panic`, or an integer N > 0 meaning zap level -N,
/// i.e. debug (1) and custom levels more verbose than debug (2, 3, 4, 5, 6 ...).
public enum LogLevelName {
    public static let accepted =
        "trace, debug, info, notice, warning, error or critical (or zap's warn, panic, or an integer > 0)"

    public static func parse(_ text: String) -> Logger.Level? {
        if let level = Logger.Level(rawValue: text) { return level }
        return zap(text)
    }

    /// zap's names and numbers only (`--zap-log-level`).
    public static func zap(_ text: String) -> Logger.Level? {
        switch text.lowercased() {
        case "debug": return .debug
        case "info": return .info
        case "warn": return .warning
        case "error": return .error
        case "panic": return .critical
        default:
            // zapcore.Level(-N): -1 is DebugLevel, anything lower is more verbose than debug,
            // which swift-log calls trace. 0 and negatives are refused, as controller-runtime does;
            // zap's level is an Int8.
            guard !text.isEmpty, text.utf8.count <= 3, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                let number = Int(text), (1...127).contains(number)
            else { return nil }
            return number == 1 ? .debug : .trace
        }
    }
}
