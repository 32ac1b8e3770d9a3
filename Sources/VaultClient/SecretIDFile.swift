import KMSRuntime

#if canImport(Glibc)
    import Glibc
#endif

/// Why the secret-ID file was refused. The text is shown to operators as is: it names the path and
/// the problem, never the file's content.
public struct SecretIDFileError: Error, Equatable, CustomStringConvertible, Sendable {
    enum Code: Equatable, Sendable {
        case missing, notRegularFile, symbolicLink, empty, accessibleByOthers, wrongOwner, tooLarge, badContent,
            unreadable
    }

    let code: Code
    public let description: String

    init(_ code: Code, _ description: String) {
        self.code = code
        self.description = description
    }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.code == rhs.code }
}

/// The AppRole secret-ID file: only the broker reads it, at startup (to fail fast) and at every
/// login (so a rotated secret ID is picked up without a restart).
public enum SecretIDFile {
    /// A Vault secret ID is a 36-byte UUID; 4 KiB leaves room for any wrapping format while keeping
    /// the read bounded.
    public static let maxBytes = 4096

    /// Reads and checks the file: a regular file (a symlink only as `ConfinedSymlink` allows, the
    /// file it leads to is checked), owned by the broker's effective
    /// uid, no group or other permission bits, 1 to `maxBytes` bytes after removing one trailing
    /// newline, no whitespace or control characters.
    public static func load(path: String) throws(SecretIDFileError) -> SecretBytes {
        try loadFingerprinted(path: path).secret
    }

    /// `load`, with the fingerprint of exactly the file that was read (its `fstat`).
    static func loadFingerprinted(path: String) throws(SecretIDFileError) -> (
        secret: SecretBytes, fingerprint: SecretIDFingerprint
    ) {
        // A Kubernetes Secret volume's links (`secret-id -> ..data/secret-id`) are followed while
        // they stay inside the path's directory; the checks below apply to the file they reach.
        let file: String
        switch ConfinedSymlink.resolve(path) {
        case .direct: file = path
        case .inside(let final): file = final
        case .outside(let final): throw SecretIDFileError(.symbolicLink, symlinkMessage(path, final))
        case .failed(let code):
            if code == ENOENT { throw SecretIDFileError(.missing, "secret-ID file \(path) does not exist") }
            throw SecretIDFileError(
                .unreadable, "cannot inspect secret-ID file \(path): \(SystemError("lstat", errno: code))")
        }
        var info = stat()
        guard lstat(file, &info) == 0 else {
            let code = errno
            if code == ENOENT {
                throw SecretIDFileError(
                    .unreadable, "secret-ID file \(path) changed while it was being opened; try again")
            }
            throw SecretIDFileError(
                .unreadable, "cannot inspect secret-ID file \(path): \(SystemError("lstat", errno: code))")
        }
        try check(info, path: path)

        let fd = open(file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)
        guard fd >= 0 else {
            let code = errno
            if code == ELOOP || code == ENOENT {
                // Replaced by a link, or a kubelet swap removed the old `..<timestamp>` directory.
                throw SecretIDFileError(
                    .unreadable, "secret-ID file \(path) changed while it was being opened; try again")
            }
            throw SecretIDFileError(
                .unreadable, "cannot open secret-ID file \(path): \(SystemError("open", errno: code))")
        }
        defer { close(fd) }
        // The file may have been replaced between lstat and open: check what was opened.
        var opened = stat()
        guard fstat(fd, &opened) == 0 else {
            throw SecretIDFileError(.unreadable, "cannot inspect secret-ID file \(path): \(SystemError("fstat"))")
        }
        try check(opened, path: path)
        guard opened.st_dev == info.st_dev, opened.st_ino == info.st_ino else {
            throw SecretIDFileError(.unreadable, "secret-ID file \(path) changed while it was being opened; try again")
        }

        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: maxBytes + 1, alignment: 1)
        defer {
            explicit_bzero(buffer.baseAddress!, buffer.count)
            buffer.deallocate()
        }
        var total = 0
        while total < buffer.count {
            let count = read(fd, buffer.baseAddress! + total, buffer.count - total)
            if count < 0 {
                if errno == EINTR { continue }
                throw SecretIDFileError(.unreadable, "cannot read secret-ID file \(path): \(SystemError("read"))")
            }
            if count == 0 { break }
            total += count
        }
        guard total <= maxBytes else { throw tooLarge(path) }
        var length = total
        if length > 0 && buffer[length - 1] == 0x0A { length -= 1 }
        guard length > 0 else {
            throw SecretIDFileError(.empty, "secret-ID file \(path) is empty; write the AppRole secret ID into it")
        }
        for index in 0..<length where buffer[index] < 0x21 || buffer[index] == 0x7F {
            throw SecretIDFileError(
                .badContent,
                "secret-ID file \(path) contains whitespace or control characters (only one trailing newline is allowed)"
            )
        }
        return (SecretBytes(UnsafeRawBufferPointer(rebasing: buffer[0..<length])), SecretIDFingerprint(opened))
    }

    private static func check(_ info: stat, path: String) throws(SecretIDFileError) {
        let type = info.st_mode & S_IFMT
        if type == S_IFLNK {
            throw SecretIDFileError(.unreadable, "secret-ID file \(path) changed while it was being opened; try again")
        }
        guard type == S_IFREG else {
            let kind = type == S_IFDIR ? "a directory" : "not a regular file"
            throw SecretIDFileError(.notRegularFile, "secret-ID file \(path) is \(kind)")
        }
        let mode = info.st_mode & 0o7777
        guard mode & 0o077 == 0 else {
            throw SecretIDFileError(
                .accessibleByOthers,
                "secret-ID file \(path) is accessible by group or others (mode \(octal(mode))); chmod 0400")
        }
        let euid = geteuid()
        guard info.st_uid == euid else {
            throw SecretIDFileError(
                .wrongOwner,
                "secret-ID file \(path) is owned by uid \(info.st_uid), not by the broker's uid \(euid); chown it")
        }
        guard info.st_size <= maxBytes else { throw tooLarge(path) }
    }

    private static func tooLarge(_ path: String) -> SecretIDFileError {
        SecretIDFileError(
            .tooLarge, "secret-ID file \(path) is larger than \(maxBytes) bytes; it should hold only the secret ID")
    }

    private static func symlinkMessage(_ path: String, _ final: String) -> String {
        "secret-ID file \(path) is a symbolic link leading out of its directory (to \(final)); "
            + "point the secret-ID path at the file itself (links inside its directory, as in a Secret volume, are followed)"
    }

    private static func octal(_ mode: mode_t) -> String {
        let digits = String(mode, radix: 8)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }
}
