#if canImport(Glibc)
    import Glibc
#endif

/// What `stat` says about the secret-ID file (the file its links lead to): a new inode, size, owner, mode, mtime or ctime
/// means the file was replaced or written (any write moves ctime, which no user can set back), so
/// a login refused with the old content may succeed now. Never the content itself.
struct SecretIDFingerprint: Equatable {
    var exists: Bool
    var device: UInt64 = 0
    var inode: UInt64 = 0
    var size: Int64 = 0
    var mode: UInt32 = 0
    var owner: UInt32 = 0
    var modified: timespec = timespec()
    var changed: timespec = timespec()

    init(_ info: stat) {
        exists = true
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
        size = Int64(info.st_size)
        mode = UInt32(info.st_mode)
        owner = UInt32(info.st_uid)
        modified = info.st_mtim
        changed = info.st_ctim
    }

    private init(missing: Void) { exists = false }

    /// The file at `path` now (a missing or uninspectable path is one value of its own).
    static func current(path: String) -> SecretIDFingerprint {
        var info = stat()
        // stat, not lstat: behind a Secret volume's links, the kubelet's `..data` swap changes
        // the file reached (its inode), not the link named by the path.
        guard stat(path, &info) == 0 else { return SecretIDFingerprint(missing: ()) }
        return SecretIDFingerprint(info)
    }

    static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.exists == rhs.exists && lhs.device == rhs.device && lhs.inode == rhs.inode && lhs.size == rhs.size
            && lhs.mode == rhs.mode && lhs.owner == rhs.owner
            && lhs.modified.tv_sec == rhs.modified.tv_sec && lhs.modified.tv_nsec == rhs.modified.tv_nsec
            && lhs.changed.tv_sec == rhs.changed.tv_sec && lhs.changed.tv_nsec == rhs.changed.tv_nsec
    }
}
