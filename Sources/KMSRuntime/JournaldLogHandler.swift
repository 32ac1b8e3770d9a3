import CSystemd
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// A swift-log backend writing native journald entries with `sd_journal_sendv`: `MESSAGE`,
/// `PRIORITY` (syslog numbering), `SYSLOG_IDENTIFIER`, `EVENT`, `PROCESS`, and every metadata
/// field as an upper-case journal field (`connection` -> `CONNECTION`). Chosen automatically when
/// stderr is the journal (`JournalStream.stderrIsJournal`) or with `--log-format journald`.
/// Like the line backends it never sees a secret: callers never log one.
public struct JournaldLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    private let process: String
    private let identifier: String

    /// `process` is "broker" or "front"; `identifier` the SYSLOG_IDENTIFIER (the executable name).
    public init(process: String, identifier: String, level: Logger.Level) {
        self.process = process
        self.identifier = identifier
        self.logLevel = level
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields = metadata
        if let extra = event.metadata { fields.merge(extra) { _, new in new } }
        let entry = Self.fields(
            level: event.level, identifier: identifier, process: process, event: "\(event.message)", metadata: fields)
        _ = Self.send(entry)
    }

    /// The journal entry as `NAME=value` fields, in a fixed order: MESSAGE, PRIORITY,
    /// SYSLOG_IDENTIFIER, EVENT, PROCESS, then the metadata sorted by name.
    public static func fields(
        level: Logger.Level, identifier: String, process: String, event: String, metadata: Logger.Metadata
    ) -> [String] {
        let keys = metadata.keys.sorted()
        var message = event
        for key in keys { message += " \(key)=\(LineLogHandler.flatten(metadata[key]!))" }
        var out = [
            "MESSAGE=\(message)", "PRIORITY=\(priority(level))", "SYSLOG_IDENTIFIER=\(identifier)", "EVENT=\(event)",
            "PROCESS=\(process)",
        ]
        let reserved: Set<String> = ["MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "EVENT", "PROCESS"]
        for key in keys {
            let name = fieldName(key)
            guard !reserved.contains(name) else { continue }
            out.append("\(name)=\(LineLogHandler.flatten(metadata[key]!))")
        }
        return out
    }

    /// syslog priority: critical 2, error 3, warning 4, notice 5, info 6, debug and trace 7.
    public static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .critical: 2
        case .error: 3
        case .warning: 4
        case .notice: 5
        case .info: 6
        case .debug, .trace: 7
        }
    }

    /// A valid journal field name: A-Z, 0-9 and `_`, not starting with `_` or a digit (those are
    /// trusted or invalid), at most 64 bytes. `peer_uid` -> `PEER_UID`, `duration-ms` -> `DURATION_MS`.
    public static func fieldName(_ key: String) -> String {
        var name = ""
        for scalar in key.unicodeScalars {
            switch scalar {
            case "a"..."z": name.unicodeScalars.append(Unicode.Scalar(scalar.value - 32)!)
            case "A"..."Z", "0"..."9": name.unicodeScalars.append(scalar)
            default: name += "_"
            }
        }
        if name.isEmpty || name.first == "_" || name.first!.isNumber { name = "F_" + name }
        return String(name.prefix(64))
    }

    /// Sends one entry; returns sd_journal_sendv's result (0 or a negative errno).
    @discardableResult
    static func send(_ fields: [String]) -> Int32 {
        let buffers = fields.map { field -> UnsafeMutableRawBufferPointer in
            let bytes = Array(field.utf8)
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, bytes.count), alignment: 1)
            buffer.copyBytes(from: bytes)
            return UnsafeMutableRawBufferPointer(rebasing: buffer[0..<bytes.count])
        }
        defer { for buffer in buffers { buffer.deallocate() } }
        var vectors = buffers.map { iovec(iov_base: $0.baseAddress, iov_len: $0.count) }
        return vectors.withUnsafeMutableBufferPointer { kms_sd_journal_sendv($0.baseAddress, Int32($0.count)) }
    }
}

/// Whether stderr is connected to the journal: systemd sets `JOURNAL_STREAM=<dev>:<inode>` for a
/// service whose stderr is a journal stream; it only counts if stderr still is that stream.
public enum JournalStream {
    public static func stderrIsJournal() -> Bool {
        guard let value = getenv("JOURNAL_STREAM").map({ String(cString: $0) }) else { return false }
        var info = stat()
        guard fstat(2, &info) == 0 else { return false }
        return matches(value, device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
    }

    /// `value` is `<device>:<inode>` in decimal and names exactly this device and inode.
    public static func matches(_ value: String, device: UInt64, inode: UInt64) -> Bool {
        let parts = value.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let dev = UInt64(parts[0]), let ino = UInt64(parts[1]) else { return false }
        return dev == device && ino == inode
    }
}

extension LogFormat {
    /// The format to use when `--log-format` is not given: journald when stderr is the journal,
    /// JSON lines otherwise.
    public static func defaultForStderr() -> LogFormat { JournalStream.stderrIsJournal() ? .journald : .json }
}
