import CLinux

#if canImport(Glibc)
    import Glibc
#endif

/// `RLIMIT_CORE` 0 (soft and hard): the process never writes a core file, whatever the
/// system's `core_pattern` or a later `setrlimit` by code running in it (an unprivileged process
/// cannot raise its hard limit again). Both processes call it first thing, in every topology.
public enum CoreDumps {
    /// Returns false when the limit is not 0 afterwards (setrlimit refused, e.g. by an outer
    /// seccomp profile, and the service manager did not set `LimitCORE=0` either).
    @discardableResult
    public static func disable() -> Bool {
        var limit = rlimit(rlim_cur: 0, rlim_max: 0)
        if setrlimit(__rlimit_resource_t(RLIMIT_CORE.rawValue), &limit) == 0 { return true }
        return limits().map { $0.soft == 0 && $0.hard == 0 } ?? false
    }

    /// `disable()` and `PR_SET_DUMPABLE` 0: no core dumps, no ptrace by same-uid processes,
    /// /proc/self files owned by root. The broker calls it first thing, before the secret ID is
    /// read, in every command that reads it (the one place the broker sets either).
    public static func disableDumping() throws(ConfigurationError) {
        guard disable() else {
            throw ConfigurationError("setrlimit(RLIMIT_CORE, 0) failed: \(SystemError("setrlimit"))")
        }
        guard kms_set_dumpable(0) == 0 else {
            throw ConfigurationError("prctl(PR_SET_DUMPABLE, 0) failed: \(SystemError("prctl"))")
        }
    }

    /// Whether the process is dumpable (`PR_GET_DUMPABLE`), for tests and preflight.
    public static var isDumpable: Bool { kms_get_dumpable() != 0 }

    /// The current soft and hard limits (for tests and preflight).
    public static func limits() -> (soft: UInt64, hard: UInt64)? {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_CORE.rawValue), &limit) == 0 else { return nil }
        return (UInt64(limit.rlim_cur), UInt64(limit.rlim_max))
    }
}
