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

    /// Reads the current figures of the calling process (opening /proc each time).
    public static func current() -> ProcessStatistics {
        var result = ProcessStatistics()
        if let stat = readSmallFile("/proc/self/stat") { result.apply(stat: stat, bootTime: bootTimeSeconds()) }
        result.openFDs = countOpenFDs()
        return result
    }

    /// Fills CPU time, RSS and start time from the text of /proc/self/stat.
    mutating func apply(stat: String, bootTime: UInt64?) {
        let ticks = UInt64(max(sysconf(Int32(_SC_CLK_TCK)), 1))
        let pageSize = UInt64(max(sysconf(Int32(_SC_PAGESIZE)), 1))
        guard let fields = Self.statFields(stat) else { return }
        if let utime = UInt64(fields[11]), let stime = UInt64(fields[12]) {
            cpuMicros = (utime + stime) * 1_000_000 / ticks
        }
        if let rssPages = UInt64(fields[21]) { residentBytes = rssPages * pageSize }
        if let startTicks = UInt64(fields[19]), let bootTime { startTimeSeconds = bootTime + startTicks / ticks }
    }

    /// The fields of /proc/self/stat after the `(comm)` field (which may contain spaces):
    /// index 0 is `state` (field 3 of proc(5)), so utime (14) is index 11, rss (24) index 21.
    static func statFields(_ text: String) -> [Substring]? {
        guard let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        return fields.count > 21 ? fields : nil
    }

    static func bootTimeSeconds() -> UInt64? {
        guard let stat = readSmallFile("/proc/stat", limit: 64 * 1024) else { return nil }
        for line in stat.split(separator: "\n") where line.hasPrefix("btime ") {
            return UInt64(line.dropFirst(6))
        }
        return nil
    }

    private static func countOpenFDs() -> UInt64? {
        guard let directory = opendir("/proc/self/fd") else { return nil }
        defer { closedir(directory) }
        return count(directory)
    }

    /// Counts the entries of an open /proc/self/fd stream, less the stream's own descriptor.
    static func count(_ directory: OpaquePointer) -> UInt64 {
        var count: UInt64 = 0
        while let entry = readdir(directory) {
            if entry.pointee.d_name.0 != UInt8(ascii: ".") { count += 1 }
        }
        // The directory stream itself holds one descriptor while counting.
        return count > 0 ? count - 1 : 0
    }

    static func readSmallFile(_ path: String, limit: Int = 4096) -> String? {
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

/// `ProcessStatistics` through descriptors opened once, at creation: a process whose sandbox
/// later denies every path (the front, docs/security-model.md) keeps its `process_*` metrics.
/// /proc/self/stat is re-read with pread at offset 0, /proc/self/fd rewound; the boot time
/// (/proc/stat `btime`) does not change and is read once.
public final class ProcessStatisticsReader {
    private let statFD: Int32
    private let fdDirectory: OpaquePointer?
    private let bootTime: UInt64?

    public init() {
        statFD = open("/proc/self/stat", O_RDONLY | O_CLOEXEC)
        fdDirectory = opendir("/proc/self/fd")
        if let fdDirectory { _ = fcntl(dirfd(fdDirectory), F_SETFD, FD_CLOEXEC) }
        bootTime = ProcessStatistics.bootTimeSeconds()
    }

    deinit {
        if statFD >= 0 { close(statFD) }
        if let fdDirectory { closedir(fdDirectory) }
    }

    public func current() -> ProcessStatistics {
        var result = ProcessStatistics()
        if statFD >= 0 {
            var buffer = [UInt8](repeating: 0, count: 4096)
            let count = buffer.withUnsafeMutableBytes { pread(statFD, $0.baseAddress, $0.count, 0) }
            if count > 0 { result.apply(stat: String(decoding: buffer[..<count], as: UTF8.self), bootTime: bootTime) }
        }
        if let fdDirectory {
            rewinddir(fdDirectory)
            result.openFDs = ProcessStatistics.count(fdDirectory)
        }
        return result
    }
}
