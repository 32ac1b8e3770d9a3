import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// Log output formats (`--log-format`).
public enum LogFormat: String, Sendable, CaseIterable {
    case json
    case text
    /// Native journald entries (JournaldLogHandler.swift).
    case journald
}

/// A swift-log backend writing one event per line to stderr: JSON objects (default) or
/// `key=value` text. The message is an event name; details are fields. Values are escaped;
/// nothing here knows about secrets, so callers never pass one (secret types print as redacted).
public struct LineLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    private let label: String
    private let format: LogFormat

    public init(label: String, level: Logger.Level, format: LogFormat) {
        self.label = label
        self.logLevel = level
        self.format = format
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields = metadata
        if let extra = event.metadata { fields.merge(extra) { _, new in new } }
        let line: String
        switch format {
        case .json, .journald:
            line = Self.jsonLine(
                time: Self.timestamp(), level: event.level, process: label, event: "\(event.message)", fields: fields)
        case .text:
            line = Self.textLine(
                time: Self.timestamp(), level: event.level, process: label, event: "\(event.message)", fields: fields)
        }
        var bytes = Array(line.utf8)
        bytes.append(0x0A)
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let written = write(2, raw.baseAddress! + offset, raw.count - offset)
                if written <= 0 { if errno == EINTR { continue } else { break } }
                offset += written
            }
        }
    }

    static func jsonLine(time: String, level: Logger.Level, process: String, event: String, fields: Logger.Metadata)
        -> String
    {
        var out =
            "{\"time\":\"\(time)\",\"level\":\"\(level.rawValue)\",\"process\":\(jsonString(process)),\"event\":\(jsonString(event))"
        for key in fields.keys.sorted() {
            out += ",\(jsonString(key)):\(jsonString(flatten(fields[key]!)))"
        }
        return out + "}"
    }

    static func textLine(time: String, level: Logger.Level, process: String, event: String, fields: Logger.Metadata)
        -> String
    {
        var out = "\(time) \(level.rawValue) \(process) \(event)"
        for key in fields.keys.sorted() { out += " \(key)=\(jsonString(flatten(fields[key]!)))" }
        return out
    }

    static func flatten(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let string): string
        case .stringConvertible(let convertible): convertible.description
        case .array(let values): values.map(flatten).joined(separator: ",")
        case .dictionary(let dictionary):
            dictionary.keys.sorted().map { "\($0)=\(flatten(dictionary[$0]!))" }.joined(separator: ",")
        }
    }

    /// JSON string literal with every control character escaped.
    public static func jsonString(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// RFC 3339 UTC time with milliseconds.
    static func timestamp() -> String { UTCTime.rfc3339() }
}

/// Process-wide logging setup; call once from main before anything logs.
public enum LogSetup {
    public static func bootstrap(process: String, level: Logger.Level, format: LogFormat) {
        LoggingSystem.bootstrap { label in
            if format == .journald {
                let identifier = process == "front" ? "vault-kube-kms-front" : "vault-kube-kms"
                return JournaldLogHandler(process: process, identifier: identifier, level: level)
            }
            return LineLogHandler(label: process, level: level, format: format)
        }
    }
}
