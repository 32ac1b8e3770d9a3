#if canImport(Glibc)
    import Glibc
#endif

/// The one rule for the broker's secret files behind symlinks (the secret-ID file and
/// `--tls-client-key`): a path that is a symlink is followed only while the file it leads to lies
/// inside the directory holding the path, as the kubelet lays out a Secret volume
/// (`secret-id -> ..data/secret-id`, `..data -> ..<timestamp>/`). The owner and mode rules then
/// apply to that final file. A link out of the directory (to another user's file, to /proc) is
/// refused. Messages name paths, never content.
enum ConfinedSymlink {
    enum Resolution: Equatable {
        /// Not a symlink: use the path as it is.
        case direct
        /// A symlink whose final file (every link resolved) is inside the path's directory.
        case inside(String)
        /// A symlink leading out of the path's directory (the final path, for the message).
        case outside(String)
        /// lstat or realpath failed (errno; ENOENT also for a dangling link).
        case failed(Int32)
    }

    static func resolve(_ path: String) -> Resolution {
        var info = stat()
        guard lstat(path, &info) == 0 else { return .failed(errno) }
        guard info.st_mode & S_IFMT == S_IFLNK else { return .direct }
        guard let final = realPath(path) else { return .failed(errno) }
        guard let directory = realPath(parent(of: path)) else { return .failed(errno) }
        let prefix = directory == "/" ? "/" : directory + "/"
        return final.hasPrefix(prefix) && final.count > prefix.count ? .inside(final) : .outside(final)
    }

    /// The directory part of `path` ("." for a bare name, "/" for a file in the root).
    static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let head = String(path[..<slash])
        return head.isEmpty ? "/" : head
    }

    private static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
