import CLinux  // kms_linux.h: kms_peer_credentials (struct ucred is GNU-only)

#if canImport(Glibc)
    import Glibc
#endif

/// Unix socket primitives shared by both processes.
public enum UnixSocket {
    /// A connected SOCK_SEQPACKET pair for the broker protocol; both ends close-on-exec (the spawn
    /// code dups the front's end into place, which clears the flag on the copy only).
    public static func seqpacketPair() throws(SystemError) -> (Int32, Int32) {
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            throw SystemError("socketpair")
        }
        return (fds[0], fds[1])
    }

    public static func setNonBlocking(_ fd: Int32) throws(SystemError) {
        let flags = fcntl(fd, F_GETFL)
        guard flags >= 0, fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0 else { throw SystemError("fcntl(O_NONBLOCK)") }
    }

    /// Sends one packet. Returns false when the socket would block or is closed.
    public static func sendPacket(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        let sent = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        return sent == bytes.count
    }

    public enum Receive: Equatable {
        case packet([UInt8])
        /// The packet was larger than the limit (the kernel reported its real size).
        case oversized(Int)
        case wouldBlock
        case closed
    }

    /// Receives one packet of at most `limit` bytes; a longer one is reported, not truncated silently.
    public static func receivePacket(_ fd: Int32, limit: Int) -> Receive {
        // Not zero-filled first: only the bytes recv wrote are kept (a memset of the whole limit
        // per packet was the front's largest single cost per call in callgrind).
        var count = 0
        let buffer = [UInt8](unsafeUninitializedCapacity: limit + 1) { raw, initialized in
            count = recv(fd, raw.baseAddress, raw.count, Int32(MSG_TRUNC))
            initialized = (1...limit).contains(count) ? count : 0
        }
        if count < 0 {
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? .wouldBlock : .closed
        }
        if count == 0 { return .closed }
        if count > limit { return .oversized(count) }
        return .packet(buffer)
    }

    /// The uid, gid and pid of the process at the other end (SO_PEERCRED).
    public static func peerCredentials(_ fd: Int32) -> (pid: pid_t, uid: uid_t, gid: gid_t)? {
        var pid: pid_t = 0
        var uid: uid_t = 0
        var gid: gid_t = 0
        guard kms_peer_credentials(fd, &pid, &uid, &gid) == 0 else { return nil }
        return (pid, uid, gid)
    }

    static func makeAddress(_ address: ListenAddress) -> (sockaddr_un, socklen_t) {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes: [UInt8]
        switch address {
        case .path(let path): bytes = Array(path.utf8)
        case .abstract(let name): bytes = [0] + Array(name.utf8)
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (index, byte) in bytes.enumerated() { raw[index] = byte }
        }
        let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \.sun_path)!
        let length: Int
        switch address {
        case .path: length = pathOffset + bytes.count + 1
        case .abstract: length = pathOffset + bytes.count
        }
        return (addr, socklen_t(length))
    }

    /// Connects a stream or seqpacket socket to `address`; returns the fd or throws.
    public static func connect(
        to address: ListenAddress, type: Int32 = Int32(SOCK_STREAM.rawValue)
    ) throws(SystemError) -> Int32 {
        let fd = socket(AF_UNIX, type | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket") }
        var (addr, length) = makeAddress(address)
        let result = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, length) }
        }
        guard result == 0 else {
            let error = SystemError("connect", errno: errno)
            close(fd)
            throw error
        }
        return fd
    }
}
