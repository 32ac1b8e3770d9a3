#if canImport(Glibc)
    import Glibc
#endif

/// What an inherited descriptor is, checked against what a process expects (the front's
/// `--broker-fd`/`--listen-fd`, a socket-activated descriptor): the one socket check of both
/// processes.
public enum SocketCheck: Equatable, Sendable {
    /// getsockopt(SO_TYPE) failed: not a socket (or not open).
    case notASocket(errno: Int32)
    case wrongType(Int32)
    case notUnix
    /// Listening when a connected socket was expected, or the reverse (`listening` is what it is).
    case wrongState(listening: Bool)

    /// nil when `fd` is an AF_UNIX socket of `type` that is (or is not) listening as asked.
    public static func problem(_ fd: Int32, type: Int32, listening: Bool) -> SocketCheck? {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_TYPE, &value, &length) == 0 else { return .notASocket(errno: errno) }
        guard value == type else { return .wrongType(value) }
        length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &value, &length) == 0, value == AF_UNIX else { return .notUnix }
        length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &value, &length) == 0, (value != 0) == listening else {
            return .wrongState(listening: !listening)
        }
        return nil
    }
}
