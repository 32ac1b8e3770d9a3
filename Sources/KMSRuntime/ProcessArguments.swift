import CLinux

#if canImport(Glibc)
    import Glibc
#endif

/// The process' real command line. Swift's `CommandLine.arguments` reads /proc/self/cmdline on
/// Linux, so where /proc is not mounted (a chroot, a minimal root) it is empty and a binary would
/// run with no flags at all. `CSpawn/kms_args.c` captures argc/argv before `main` instead; both
/// binaries hand these to the argument parser.
public enum ProcessArguments {
    /// argv as the kernel passed it (argv[0] first), or nil when the capture did not run.
    public static func captured() -> [String]? {
        let count = kms_args_count()
        guard count >= 0 else { return nil }
        return (0..<count).map { index in kms_args_value(Int32(index)).map { String(cString: $0) } ?? "" }
    }

    /// The real argv (argv[0] first): the captured one, else `CommandLine.arguments`. When
    /// neither is available, writes one line to stderr and exits with status 2: a binary never
    /// runs silently with no flags.
    public static func current(program: String = "vault-kube-kms") -> [String] {
        if let captured = captured(), !captured.isEmpty { return captured }
        let fallback = CommandLine.arguments
        if !fallback.isEmpty { return fallback }
        let message =
            "\(program): cannot read the command line (argv was not captured and /proc/self/cmdline is "
            + "unreadable); refusing to start without its flags\n"
        _ = message.withCString { write(2, $0, strlen($0)) }
        exit(2)
    }
}
