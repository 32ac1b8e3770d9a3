import ArgumentParser
import KMSRuntime
import Logging

/// `--log-level` and `--log-format`, validated.
struct LoggingOptions {
    var level: Logger.Level
    var format: LogFormat

    init(level: String?, format: String?) throws {
        guard let parsedLevel = Logger.Level(rawValue: level ?? "info") else {
            throw ValidationError(
                "--log-level must be one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard let parsedFormat = LogFormat(rawValue: format ?? LogFormat.defaultForStderr().rawValue) else {
            throw ValidationError("--log-format must be json, text or journald")
        }
        self.level = parsedLevel
        self.format = parsedFormat
    }
}
