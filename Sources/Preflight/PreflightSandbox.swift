import CSandbox
import KMSRuntime

/// `preflight`'s view of the front's sandbox on this kernel: the Landlock ABI it offers against
/// the one the binary supports, and whether the seccomp filter can be loaded. WARN when the
/// front would run weaker than it can, with the kernel release; the one-uid topology refuses to
/// start below ABI 6, which is said too.
enum PreflightSandbox {
    static func check(into report: inout PreflightReport) {
        let abi = Int(kms_landlock_abi())
        report.add(landlock(kernelABI: abi, supported: Int(KMS_LANDLOCK_ABI_SUPPORTED), kernel: KernelRelease.current))
        report.add(seccomp(architectureSupported: kms_seccomp_supported() == 1, mode: Int(kms_seccomp_mode())))
    }

    /// `kernelABI` < 1: no Landlock (not built in, or disabled at boot).
    static func landlock(kernelABI: Int, supported: Int, kernel: String) -> PreflightResult {
        if kernelABI >= supported {
            return PreflightResult(
                "sandbox.landlock", .pass,
                "kernel \(kernel) offers Landlock ABI \(kernelABI); the front enforces ABI \(supported) "
                    + "(filesystem, TCP, abstract-socket and signal scoping)")
        }
        let offered = kernelABI < 1 ? "no Landlock" : "Landlock ABI \(kernelABI)"
        var missing: [String] = []
        if kernelABI < 1 { missing.append("no filesystem rules") }
        if kernelABI < 4 { missing.append("no TCP bind/connect rules") }
        if kernelABI < 6 { missing.append("no abstract-socket or signal scoping; --one-uid refuses to start") }
        if missing.isEmpty { missing.append("only the newest ABI's audit logging is missing") }
        return PreflightResult(
            "sandbox.landlock", .warn,
            "kernel \(kernel) offers \(offered), the front supports ABI \(supported): "
                + missing.joined(separator: "; "))
    }

    /// `mode` is prctl(PR_GET_SECCOMP): 0 none, 2 already filtered (by the service manager or
    /// container runtime: the front's filter stacks on it), -1 the kernel has no seccomp.
    static func seccomp(architectureSupported: Bool, mode: Int) -> PreflightResult {
        guard architectureSupported else {
            return PreflightResult(
                "sandbox.seccomp", .warn, "the front has no seccomp filter for this architecture (x86_64, aarch64 only)"
            )
        }
        guard mode >= 0 else {
            return PreflightResult(
                "sandbox.seccomp", .warn, "the kernel has no seccomp: the front runs without its filter")
        }
        return PreflightResult(
            "sandbox.seccomp", .pass,
            "the front loads its seccomp filter (\(kms_seccomp_allowed_count()) syscalls allowed)")
    }
}
