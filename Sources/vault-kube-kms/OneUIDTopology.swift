import Broker
import CSandbox
import KMSRuntime

/// The one-uid topology's start-up rules (`serve --one-uid`): the front's sandbox is the
/// separation, so it is required, and a kernel that cannot give it in full is refused before
/// anything starts (docs/security-model.md, "One uid").
enum OneUIDTopology {
    /// The front's `--sandbox` value: `required` under `--one-uid` unless `off` is asked for
    /// explicitly (debugging; the front then logs `sandbox.disabled`), else what was asked.
    static func frontSandbox(plan: FrontPrivilegePlan, requested: String?) throws(ConfigurationError) -> String {
        let modes = ["best-effort", "required", "off"]
        if let requested, !modes.contains(requested) {
            throw ConfigurationError("invalid --front-sandbox \(requested.debugDescription) (best-effort|required|off)")
        }
        if case .oneUID = plan {
            if requested == "best-effort" {
                throw ConfigurationError("--one-uid needs --front-sandbox required (or off, for debugging only)")
            }
            return requested ?? "required"
        }
        return requested ?? "best-effort"
    }

    /// Landlock ABI 6 (signal and abstract-socket scoping) and a seccomp filter for this
    /// architecture, or a clear refusal naming the kernel.
    static func checkKernel() throws(ConfigurationError) {
        let abi = kms_landlock_abi()
        guard abi >= 6 else {
            let offered = abi < 0 ? "no Landlock" : "Landlock ABI \(abi)"
            throw ConfigurationError(
                "--one-uid needs Landlock ABI 6 or newer; this kernel (\(KernelRelease.current)) offers \(offered): "
                    + "use two uids (start the broker as root, or the split topology)")
        }
        guard kms_seccomp_supported() == 1 else {
            throw ConfigurationError("--one-uid needs the front's seccomp filter, which this architecture lacks")
        }
    }
}
