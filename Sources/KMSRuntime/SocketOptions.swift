#if canImport(Glibc)
    import Glibc
#endif

/// Parsing of `--socket-mode` and `--socket-group`.
public enum SocketOptions {
    /// An octal mode such as `0660`; refuses any access for others.
    public static func parseMode(_ text: String) throws(ConfigurationError) -> mode_t {
        guard let mode = mode_t(text, radix: 8), mode <= 0o777 else {
            throw ConfigurationError("--socket-mode must be an octal mode like 0660 (got \(text.debugDescription))")
        }
        guard mode & 0o007 == 0 else {
            throw ConfigurationError("--socket-mode \(text) gives access to others; use 0660 or stricter")
        }
        guard mode & 0o600 == 0o600 else {
            throw ConfigurationError("--socket-mode \(text) must give the owner read and write")
        }
        return mode
    }

    /// A group name or numeric gid.
    public static func resolveGroup(_ spec: String) throws(ConfigurationError) -> gid_t {
        if let gid = UInt32(spec) { return gid }
        var entry = group()
        var result: UnsafeMutablePointer<group>?
        var buffer = [CChar](repeating: 0, count: 16_384)
        guard getgrnam_r(spec, &entry, &buffer, buffer.count, &result) == 0, let found = result else {
            throw ConfigurationError("socket group \(spec.debugDescription) does not exist")
        }
        return found.pointee.gr_gid
    }
}
