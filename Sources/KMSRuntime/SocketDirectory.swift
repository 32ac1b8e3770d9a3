import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// The directory a socket file is bound in must be safe: if anyone but its owner could write
/// to it, they could replace the socket between our bind and kube-apiserver's connect (or
/// later, at any time: kube-apiserver reconnects by path). Checked like OpenSSH's `safe_path`:
///
/// - the socket's own directory and every ancestor up to `/`, on the path as written and on its
///   resolved form (symlinks followed), must be a directory owned by root or by our euid;
/// - none may be writable by group or others, except that an **ancestor** that is sticky and
///   owned by root (like `/tmp` above a private directory of ours) is accepted: others can
///   neither rename nor remove what they do not own in it;
/// - the socket's own directory gets no sticky exception: in a sticky `/tmp` anyone can bind the
///   socket name before we do (or between a restart's unlink and bind).
///
/// One exception, for Kubernetes Pods: the kubelet makes an `emptyDir` volume (default medium) a
/// directory `pods/<uid>/volumes/kubernetes.io~empty-dir/<name>` of mode 0777, not sticky, and
/// OpenShift's operator puts the KMS socket in one (`/var/run/kmsplugin`). Such a directory is
/// accepted (`Verdict.podVolume`) only when it is the root of its own mount and that mount is a
/// bind of exactly that kubelet directory, owned by root, world-writable and not sticky, and
/// every ancestor passes the strict rule. Only the Pod's containers see that mount; /tmp,
/// /var/tmp, /dev/shm and /run/lock are sticky and stay refused, and a directory merely inside a
/// shared filesystem is never a mount root. A `medium: Memory` emptyDir is a fresh tmpfs, mode
/// 1777, which nothing in the container tells apart from a host's tmpfs /tmp: it stays refused.
/// docs/security-model.md has the argument and what was measured.
public enum SocketDirectory {
    public enum Verdict: Equatable, Sendable {
        /// Only root or we can write the directory and every ancestor.
        case privateDirectory
        /// A world-writable Pod volume, accepted by the exception above (the reason says which).
        case podVolume(String)
    }

    /// What the rule needs to know about one directory.
    struct Entry: Equatable {
        var path: String
        var mode: mode_t
        var owner: uid_t
        /// The mount whose root this directory is (nil: not a mount point, or unknown).
        var mount: Mount?
    }

    /// One line of /proc/self/mountinfo, the parts the rule reads.
    struct Mount: Equatable {
        /// The directory of the mounted filesystem that appears here (`/` for a whole filesystem).
        var root: String
        var fileSystemType: String
    }

    /// Checks the directory of `socketPath` and all its ancestors.
    @discardableResult
    public static func check(socketPath path: String) throws(ConfigurationError) -> Verdict {
        let parent = parentDirectory(of: path)
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let real = realpath(parent, &buffer).map { String(cString: $0) } ?? parent
        // Only the socket directory's own mount matters; mountinfo lists it by resolved path.
        let mount = MountTable.current()[real]
        var verdict = Verdict.privateDirectory
        for path in real == parent ? [parent] : [parent, real] {
            var entries = try chain(of: path)
            entries[0].mount = mount
            verdict = try evaluate(entries, ourUID: geteuid())
        }
        return verdict
    }

    /// `check`, logging `socket_directory.pod_volume` when the Pod-volume exception applied.
    public static func check(socketPath path: String, logger: Logger) throws(ConfigurationError) {
        if case .podVolume(let reason) = try check(socketPath: path) {
            logger.info(
                "socket_directory.pod_volume",
                metadata: ["directory": "\(parentDirectory(of: path))", "reason": "\(reason)"])
        }
    }

    /// `directory` and each ancestor up to `/`, socket directory first, as stat(2) sees them.
    static func chain(of directory: String) throws(ConfigurationError) -> [Entry] {
        var entries: [Entry] = []
        var current = directory
        while true {
            var info = stat()
            guard stat(current, &info) == 0 else {
                throw ConfigurationError("socket directory \(current): \(SystemError("stat"))")
            }
            guard info.st_mode & S_IFMT == S_IFDIR else {
                throw ConfigurationError("socket directory \(current) is not a directory")
            }
            entries.append(Entry(path: current, mode: info.st_mode, owner: info.st_uid, mount: nil))
            if current == "/" || !current.hasPrefix("/") { break }
            current = parentDirectory(of: current)
        }
        return entries
    }

    /// The rule itself over a chain (socket directory first), for tests.
    static func evaluate(_ chain: [Entry], ourUID: uid_t) throws(ConfigurationError) -> Verdict {
        for ancestor in chain.dropFirst() {
            try checkOwner(ancestor, ourUID: ourUID, role: "ancestor")
            let sticky = ancestor.mode & S_ISVTX != 0
            if ancestor.mode & 0o022 != 0 && !(sticky && ancestor.owner == 0) {
                throw ConfigurationError(
                    "ancestor \(ancestor.path) of the socket directory (mode \(octal(ancestor.mode))) is writable by "
                        + "group or others, who could swap the directory; every directory above the socket must be "
                        + "writable only by root or this user")
            }
        }
        guard let directory = chain.first else { throw ConfigurationError("socket directory missing") }
        try checkOwner(directory, ourUID: ourUID, role: "socket directory")
        guard directory.mode & 0o022 != 0 else { return .privateDirectory }
        if let reason = podVolumeReason(directory) { return .podVolume(reason) }
        throw ConfigurationError(
            "socket directory \(directory.path) (mode \(octal(directory.mode))) is writable by group or others; "
                + "use a directory only its owner can write")
    }

    private static func checkOwner(_ entry: Entry, ourUID: uid_t, role: String) throws(ConfigurationError) {
        guard entry.owner == 0 || entry.owner == ourUID else {
            throw ConfigurationError(
                "\(role) \(entry.path) is owned by uid \(entry.owner), neither root nor this process (uid \(ourUID)): "
                    + "its owner could replace the socket")
        }
    }

    /// Why a world-writable socket directory is a Pod's `emptyDir`, or nil when it is not one.
    static func podVolumeReason(_ directory: Entry) -> String? {
        let permissions = directory.mode & 0o7777
        // 0777 as the kubelet makes it; 02777 when an fsGroup set the group and setgid.
        guard permissions & 0o777 == 0o777, permissions & S_ISVTX == 0, directory.owner == 0,
            let mount = directory.mount
        else { return nil }
        if isKubeletEmptyDir(mount.root) {
            return "a bind mount of the kubelet's emptyDir \(mount.root)"
        }
        return nil
    }

    /// `.../pods/<uid>/volumes/kubernetes.io~empty-dir/<name>`, the kubelet's layout.
    static func isKubeletEmptyDir(_ root: String) -> Bool {
        let parts = root.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count >= 6 else { return false }
        let tail = parts.suffix(5)
        let start = tail.startIndex
        return tail[start] == "pods" && !tail[start + 1].isEmpty && tail[start + 2] == "volumes"
            && tail[start + 3] == "kubernetes.io~empty-dir" && !tail[start + 4].isEmpty
    }

    static func octal(_ mode: mode_t) -> String { String(mode & 0o7777, radix: 8) }

    static func parentDirectory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let parent = String(path[..<slash])
        return parent.isEmpty ? "/" : parent
    }
}

/// /proc/self/mountinfo by mount point (the top-most mount wins where several are stacked).
enum MountTable {
    static func current() -> [String: SocketDirectory.Mount] {
        guard let file = fopen("/proc/self/mountinfo", "r") else { return [:] }
        defer { fclose(file) }
        var table: [String: SocketDirectory.Mount] = [:]
        var line: UnsafeMutablePointer<CChar>?
        var capacity = 0
        defer { free(line) }
        while getline(&line, &capacity, file) > 0, let line {
            if let (point, mount) = parse(String(cString: line)) { table[point] = mount }
        }
        return table
    }

    /// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`
    /// → ("/mnt2", root "/mnt1", type "ext3"). Paths are octal-escaped (`\040` for a space).
    static func parse(_ line: String) -> (String, SocketDirectory.Mount)? {
        let fields = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        guard fields.count >= 7, let separator = fields.firstIndex(of: "-"), separator >= 6,
            separator + 1 < fields.count
        else { return nil }
        let type = fields[separator + 1].trimmingTrailingNewline()
        return (unescape(fields[4]), SocketDirectory.Mount(root: unescape(fields[3]), fileSystemType: type))
    }

    static func unescape(_ text: String) -> String {
        guard text.contains("\\") else { return text }
        var bytes: [UInt8] = []
        let utf8 = Array(text.utf8)
        var index = 0
        while index < utf8.count {
            if utf8[index] == UInt8(ascii: "\\"), index + 3 < utf8.count,
                let value = UInt8(String(decoding: utf8[(index + 1)...(index + 3)], as: UTF8.self), radix: 8)
            {
                bytes.append(value)
                index += 4
            } else {
                bytes.append(utf8[index])
                index += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

extension String {
    fileprivate func trimmingTrailingNewline() -> String {
        var copy = self
        while copy.hasSuffix("\n") { copy.removeLast() }
        return copy
    }
}
