import KMSRuntime

#if canImport(Glibc)
    import Glibc
#endif

/// `--tls-client-key` gets the owner and mode rules of the secret-ID file: a regular file (the
/// path may be a symlink inside its directory, as Kubernetes Secret volumes make them,
/// `ConfinedSymlink`; the file it leads to is checked),
/// owned by the broker's effective uid, with no group or other permission bits. Checked at start;
/// messages name the path, never the content.
package enum PrivateKeyFile {
    package static func check(path: String) throws(ConfigurationError) {
        if case .outside(let final) = ConfinedSymlink.resolve(path) {
            throw ConfigurationError(
                "TLS client key \(path) is a symbolic link leading out of its directory (to \(final)); "
                    + "point --tls-client-key at the file itself")
        }
        var info = stat()
        guard stat(path, &info) == 0 else {
            if errno == ENOENT { throw ConfigurationError("TLS client key \(path) does not exist") }
            throw ConfigurationError("cannot inspect TLS client key \(path): \(SystemError("stat"))")
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw ConfigurationError("TLS client key \(path) is not a regular file")
        }
        let mode = info.st_mode & 0o7777
        guard mode & 0o077 == 0 else {
            let digits = String(mode, radix: 8)
            let shown = String(repeating: "0", count: max(0, 4 - digits.count)) + digits
            throw ConfigurationError(
                "TLS client key \(path) is accessible by group or others (mode \(shown)); chmod 0400")
        }
        let euid = geteuid()
        guard info.st_uid == euid else {
            throw ConfigurationError(
                "TLS client key \(path) is owned by uid \(info.st_uid), not by the broker's uid \(euid); chown it")
        }
    }
}
