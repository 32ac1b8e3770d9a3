import ArgumentParser
import KMSRuntime
import Logging

/// `--log-level` (or HashiCorp's `--zap-log-level`) and `--log-format`, validated.
struct LoggingOptions {
    var level: Logger.Level
    var format: LogFormat

    init(level: String?, format: String?, zapLevel: String? = nil) throws {
        let parsedLevel: Logger.Level
        switch (level, zapLevel) {
        case (let text?, nil):
            guard let found = LogLevelName.parse(text) else {
                throw ValidationError(
                    "--log-level must be one of \(LogLevelName.accepted) (got \(text.debugDescription))")
            }
            parsedLevel = found
        case (nil, let text?):
            guard let found = LogLevelName.zap(text) else {
                throw ValidationError(
                    "--zap-log-level must be debug, info, error, panic or an integer > 0 (got \(text.debugDescription))"
                )
            }
            parsedLevel = found
        case (nil, nil): parsedLevel = .info
        case (_?, _?): throw ValidationError("--log-level and --zap-log-level set the same thing: give one")
        }
        guard let parsedFormat = LogFormat(rawValue: format ?? LogFormat.defaultForStderr().rawValue) else {
            throw ValidationError("--log-format must be json, text or journald")
        }
        self.level = parsedLevel
        self.format = parsedFormat
    }
}
