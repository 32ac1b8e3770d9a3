import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// A listening Unix socket, socket-activated or bound here: the one opener of the front's KMS
/// socket and the split broker's socket. A socket unit's socket wins over a configured address
/// (which then only documents it): the unit owns the file, and binding it here would find it live
/// and stop.
public enum ListenEndpoint {
    public struct Opened: Equatable, Sendable {
        public var fd: Int32
        /// The path bound here, to unlink at shutdown (nil when socket-activated or abstract).
        public var boundPath: String?
        /// How logs name it: `fd:3 (kms)` for an activated socket, else the address.
        public var name: String
    }

    /// The socket-activated listening AF_UNIX socket of `type` (preferring the one named
    /// `activationName`) when one was passed, close-on-exec; else `bind()`'s address, bound with
    /// its options after the socket-directory check. `bind` throws to say why neither was possible.
    public static func open(
        type: Int32, activationName: String, logger: Logger,
        orBind bind: () throws(ConfigurationError) -> (ListenAddress, SocketListener.Options)
    ) throws(ConfigurationError) -> Opened {
        if let inherited = SocketActivation.listeningSocket(
            of: type, in: SocketActivation.inheritedSockets(), preferredName: activationName)
        {
            _ = fcntl(inherited.fd, F_SETFD, FD_CLOEXEC)
            return Opened(fd: inherited.fd, boundPath: nil, name: "fd:\(inherited.fd) (\(inherited.name))")
        }
        var (address, options) = try bind()
        options.type = type
        if case .path(let path) = address { try SocketDirectory.check(socketPath: path, logger: logger) }
        let fd = try SocketListener.listen(at: address, options: options)
        if case .path(let path) = address { return Opened(fd: fd, boundPath: path, name: address.description) }
        return Opened(fd: fd, boundPath: nil, name: address.description)
    }
}
