#if canImport(Glibc)
    import Glibc
#endif

/// Creates the listening KMS socket with explicit ownership and mode, following the stale-socket
/// rules (docs/operations.md, "The KMS socket"):
/// - an existing socket file is removed only if a connect to it is refused (nobody listens);
/// - a live socket stops startup with a clear error;
/// - anything that is not a socket is never removed.
public enum SocketListener {
    public struct Options: Sendable {
        public var mode: mode_t
        public var groupID: gid_t?
        public var type: Int32
        public var backlog: Int32

        public init(
            mode: mode_t = 0o660, groupID: gid_t? = nil, type: Int32 = Int32(SOCK_STREAM.rawValue),
            backlog: Int32 = 128
        ) {
            self.mode = mode
            self.groupID = groupID
            self.type = type
            self.backlog = backlog
        }
    }

    public static func listen(at address: ListenAddress, options: Options) throws(ConfigurationError) -> Int32 {
        guard options.mode & 0o007 == 0 else {
            throw ConfigurationError("socket mode \(String(options.mode, radix: 8)) gives access to others; refusing")
        }
        if case .path(let path) = address { try removeStaleSocket(at: path, type: options.type) }
        let fd = socket(AF_UNIX, options.type | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw ConfigurationError("socket: \(SystemError("socket"))") }
        var (addr, length) = UnixSocket.makeAddress(address)
        // Bind under a umask that leaves no access at all, then open it up to exactly `mode`:
        // the socket is never reachable with wider permissions than asked for.
        let previousMask = umask(0o177)
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        let bindErrno = errno
        umask(previousMask)
        guard bound == 0 else {
            close(fd)
            throw ConfigurationError("bind \(address): \(SystemError("bind", errno: bindErrno))")
        }
        if case .path(let path) = address {
            if let group = options.groupID, chown(path, uid_t.max, group) != 0 {
                let error = SystemError("chown")
                close(fd)
                unlink(path)
                throw ConfigurationError("set group of \(path): \(error)")
            }
            if chmod(path, options.mode) != 0 {
                let error = SystemError("chmod")
                close(fd)
                unlink(path)
                throw ConfigurationError("set mode of \(path): \(error)")
            }
        }
        guard Glibc.listen(fd, options.backlog) == 0 else {
            let error = SystemError("listen")
            close(fd)
            throw ConfigurationError("listen on \(address): \(error)")
        }
        return fd
    }

    static func removeStaleSocket(at path: String, type: Int32) throws(ConfigurationError) {
        var info = stat()
        guard lstat(path, &info) == 0 else {
            if errno == ENOENT { return }
            throw ConfigurationError("cannot inspect \(path): \(SystemError("lstat"))")
        }
        guard info.st_mode & S_IFMT == S_IFSOCK else {
            throw ConfigurationError("\(path) exists and is not a socket; refusing to remove it")
        }
        do {
            let probe = try UnixSocket.connect(to: .path(path), type: type)
            close(probe)
            throw ConfigurationError("\(path) is a live socket: another plugin is serving it")
        } catch let error as SystemError {
            guard error.errno == ECONNREFUSED else {
                throw ConfigurationError("cannot probe existing socket \(path): \(error)")
            }
        } catch let error as ConfigurationError {
            throw error
        } catch {
            throw ConfigurationError("cannot probe existing socket \(path)")
        }
        guard unlink(path) == 0 || errno == ENOENT else {
            throw ConfigurationError("cannot remove stale socket \(path): \(SystemError("unlink"))")
        }
    }
}
