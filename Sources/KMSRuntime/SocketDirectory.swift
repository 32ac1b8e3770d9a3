#if canImport(Glibc)
    import Glibc
#endif

/// The directory a socket file is bound in must be safe: if anyone but its owner could write
/// to it, they could replace the socket between our bind and kube-apiserver's connect.
public enum SocketDirectory {
    /// Refuses a parent directory that is group- or world-writable, unless it is owned by root
    /// or by us and carries the sticky bit (like /tmp: others cannot rename or remove our file).
    public static func check(socketPath path: String) throws(ConfigurationError) {
        let parent = parentDirectory(of: path)
        var info = stat()
        guard stat(parent, &info) == 0 else {
            throw ConfigurationError("socket directory \(parent): \(SystemError("stat"))")
        }
        guard info.st_mode & S_IFMT == S_IFDIR else {
            throw ConfigurationError("socket directory \(parent) is not a directory")
        }
        try check(directory: parent, mode: info.st_mode, owner: info.st_uid, ourUID: geteuid())
    }

    /// The rule itself, for tests.
    static func check(directory: String, mode: mode_t, owner: uid_t, ourUID: uid_t) throws(ConfigurationError) {
        guard mode & 0o022 != 0 else { return }
        let sticky = mode & S_ISVTX != 0
        if sticky && (owner == 0 || owner == ourUID) { return }
        throw ConfigurationError(
            "socket directory \(directory) (mode \(String(mode & 0o7777, radix: 8))) is writable by group or others; "
                + "use a directory only its owner can write")
    }

    static func parentDirectory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let parent = String(path[..<slash])
        return parent.isEmpty ? "/" : parent
    }
}
