import CSystemd

#if canImport(Glibc)
    import Glibc
#endif

/// systemd socket activation (`sd_listen_fds_with_names`): the sockets a socket unit (or
/// `systemd-socket-activate`) created and passed down as fds 3, 4, ... A process serving an
/// inherited socket never binds, chmods or unlinks it: the socket outlives the process, so a
/// restart is invisible to clients.
public enum SocketActivation {
    /// One inherited socket: its descriptor and its `FileDescriptorName=` (or "unknown").
    public struct Socket: Equatable, Sendable {
        public var fd: Int32
        public var name: String
    }

    /// The sockets passed to this process; empty when it was not socket-activated (or when
    /// `LISTEN_PID` names another process). The `LISTEN_*` variables are removed from the
    /// environment so that no child process sees them.
    public static func inheritedSockets() -> [Socket] {
        var names: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
        let count = sd_listen_fds_with_names(1, &names)
        guard count > 0 else { return [] }
        defer {
            if let names {
                for index in 0..<Int(count) { free(names[index]) }
                free(names)
            }
        }
        return (0..<count).map { index in
            let name = names?[Int(index)].map { String(cString: $0) } ?? "unknown"
            return Socket(fd: SD_LISTEN_FDS_START + index, name: name)
        }
    }

    /// The first of `sockets` that is a listening Unix socket of `type` (SOCK_STREAM for the KMS
    /// socket, SOCK_SEQPACKET for the broker socket), preferring one named `preferredName`.
    public static func listeningSocket(
        of type: Int32, in sockets: [Socket], preferredName: String? = nil
    ) -> Socket? {
        let matching = sockets.filter { isListeningUnixSocket($0.fd, type: type) }
        if let preferredName, let named = matching.first(where: { $0.name == preferredName }) { return named }
        return matching.first
    }

    /// True when `fd` is a listening AF_UNIX socket of `type`.
    public static func isListeningUnixSocket(_ fd: Int32, type: Int32) -> Bool {
        SocketCheck.problem(fd, type: type, listening: true) == nil
    }
}
