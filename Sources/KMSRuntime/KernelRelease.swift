#if canImport(Glibc)
    import Glibc
#endif

/// `uname -r`: the kernel decides what the front's sandbox can have, so logs, metrics and
/// preflight name it.
public enum KernelRelease {
    public static var current: String {
        var name = utsname()
        guard uname(&name) == 0 else { return "unknown" }
        return withUnsafeBytes(of: &name.release) { bytes in
            String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        }
    }
}
