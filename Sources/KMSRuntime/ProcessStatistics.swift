#if canImport(Glibc)
    import Glibc
#endif

/// CPU time, resident memory, open descriptors and start time of this process, read from
/// /proc/self for the `process_*` metrics of both processes. Every figure is nil when /proc is
/// not readable; nothing here allocates more than one small read buffer.
public struct ProcessStatistics: Equatable, Sendable {
    /// User plus system CPU time, microseconds.
    public var cpuMicros: UInt64?
    public var residentBytes: UInt64?
    public var openFDs: UInt64?
    /// Start time, seconds since the Unix epoch.
    public var startTimeSeconds: UInt64?

    public init(
        cpuMicros: UInt64? = nil, residentBytes: UInt64? = nil, openFDs: UInt64? = nil,
        startTimeSeconds: UInt64? = nil
    ) {
        self.cpuMicros = cpuMicros
        self.residentBytes = residentBytes
        self.openFDs = openFDs
        self.startTimeSeconds = startTimeSeconds
    }

    /// Reads the current figures of the calling process.
    public static func current() -> ProcessStatistics {
        var result = ProcessStatistics()
        let ticks = UInt64(max(sysconf(Int32(_SC_CLK_TCK)), 1))
        let pageSize = UInt64(max(sysconf(Int32(_SC_PAGESIZE)), 1))
        if let stat = readSmallFile("/proc/self/stat"), let fields = statFields(stat) {
            if let utime = UInt64(fields[11]), let stime = UInt64(fields[12]) {
                result.cpuMicros = (utime + stime) * 1_000_000 / ticks
            }
            if let rssPages = UInt64(fields[21]) { result.residentBytes = rssPages * pageSize }
            if let startTicks = UInt64(fields[19]), let boot = bootTimeSeconds() {
                result.startTimeSeconds = boot + startTicks / ticks
            }
        }
        result.openFDs = countOpenFDs()
        return result
    }

    /// The fields of /proc/self/stat after the `(comm)` field (which may contain spaces):
    /// index 0 is `state` (field 3 of proc(5)), so utime (14) is index 11, rss (24) index 21.
    static func statFields(_ text: String) -> [Substring]? {
        guard let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        return fields.count > 21 ? fields : nil
    }

    private static func bootTimeSeconds() -> UInt64? {
        guard let stat = readSmallFile("/proc/stat", limit: 64 * 1024) else { return nil }
        for line in stat.split(separator: "\n") where line.hasPrefix("btime ") {
            return UInt64(line.dropFirst(6))
        }
        return nil
    }

    private static func countOpenFDs() -> UInt64? {
        guard let directory = opendir("/proc/self/fd") else { return nil }
        defer { closedir(directory) }
        var count: UInt64 = 0
        while let entry = readdir(directory) {
            if entry.pointee.d_name.0 != UInt8(ascii: ".") { count += 1 }
        }
        // The directory stream itself holds one descriptor while counting.
        return count > 0 ? count - 1 : 0
    }

    private static func readSmallFile(_ path: String, limit: Int = 4096) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: limit)
        var total = 0
        while total < limit {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + total, limit - total) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            total += count
        }
        return String(decoding: buffer[..<total], as: UTF8.self)
    }
}
