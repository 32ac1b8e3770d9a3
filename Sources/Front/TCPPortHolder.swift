#if canImport(Glibc)
    import Glibc
#endif

/// Who holds a TCP port the front could not bind: the uids of the sockets listening on it, from
/// `/proc/net/tcp` and `/proc/net/tcp6` (world-readable; read at start, before the sandbox). The
/// `<port>.bind_failed` log line names them, so a squatter is visible without asking `/livez`,
/// which the squatter answers.
enum TCPPortHolder {
    /// Uids listening on `port` (any local address), sorted; empty when none is found (the bind
    /// failed for another reason, or /proc is not readable).
    static func listeningUIDs(port: UInt16) -> [UInt32] {
        var uids = Set<UInt32>()
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            guard let text = readTable(table) else { continue }
            uids.formUnion(listeningUIDs(port: port, table: text))
        }
        return uids.sorted()
    }

    /// Parses one table: `sl local_address rem_address st ... uid ...`, state `0A` = LISTEN, the
    /// local port the hex digits after the last `:` of `local_address`.
    static func listeningUIDs(port: UInt16, table: String) -> Set<UInt32> {
        var uids = Set<UInt32>()
        for line in table.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count > 7, fields[3] == "0A", let colon = fields[1].lastIndex(of: ":"),
                let local = UInt16(fields[1][fields[1].index(after: colon)...], radix: 16), local == port,
                let uid = UInt32(fields[7])
            else { continue }
            uids.insert(uid)
        }
        return uids
    }

    /// The whole file, at most 4 MiB (a table of ~25,000 sockets).
    private static func readTable(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while bytes.count < 4 << 20 {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            bytes.append(contentsOf: chunk[0..<count])
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
