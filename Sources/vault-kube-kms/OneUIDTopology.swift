import Broker
import CSandbox
import KMSRuntime
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// The one-uid topology's start-up rules (`serve --one-uid`): the front's sandbox is the
/// separation, so it is required, and a kernel that cannot give it in full is refused before
/// anything starts (docs/security-model.md, "One uid").
enum OneUIDTopology {
    /// The front's `--sandbox` value: `required` under `--one-uid` unless `off` is asked for
    /// explicitly (debugging; the front then logs `sandbox.disabled`), else what was asked.
    static func frontSandbox(
        plan: FrontPrivilegePlan, requested: String?, automatic: Bool = false
    ) throws(ConfigurationError) -> String {
        let modes = ["best-effort", "required", "off"]
        if let requested, !modes.contains(requested) {
            throw ConfigurationError("invalid --front-sandbox \(requested.debugDescription) (best-effort|required|off)")
        }
        if case .oneUID = plan {
            if requested == "best-effort" {
                throw ConfigurationError(
                    automatic
                        ? "the one-uid topology (chosen because the broker is not root) needs --front-sandbox required "
                            + "(or off, for debugging only)"
                        : "--one-uid needs --front-sandbox required (or off, for debugging only)")
            }
            return requested ?? "required"
        }
        return requested ?? "best-effort"
    }

    /// Landlock ABI 6 (signal and abstract-socket scoping) and a seccomp filter for this
    /// architecture, or a clear refusal naming the kernel.
    /// `automatic`: chosen because the broker is not root (no `--one-uid`); the refusal then also
    /// names the way out a non-root user would otherwise reach for, `--insecure-same-user`.
    static func checkKernel(automatic: Bool = false) throws(ConfigurationError) {
        let abi = kms_landlock_abi()
        guard abi >= 6 else {
            let offered = abi < 0 ? "no Landlock" : "Landlock ABI \(abi)"
            let kernel = KernelRelease.current
            throw ConfigurationError(
                automatic
                    ? "the one-uid topology (chosen because the broker is not root) needs Landlock ABI 6 or newer; "
                        + "this kernel (\(kernel)) offers \(offered): use two uids (start the broker as root, or the "
                        + "split topology), or --insecure-same-user (development only: no separation at all)"
                    : "--one-uid needs Landlock ABI 6 or newer; this kernel (\(kernel)) offers \(offered): "
                        + "use two uids (start the broker as root, or the split topology)")
        }
        guard kms_seccomp_supported() == 1 else {
            throw ConfigurationError(
                automatic
                    ? "the one-uid topology (chosen because the broker is not root) needs the front's seccomp filter, "
                        + "which this architecture lacks; use two uids, or --insecure-same-user (development only)"
                    : "--one-uid needs the front's seccomp filter, which this architecture lacks")
        }
    }

    /// `topology.selected` at start: loud (warning) when chosen without `--one-uid`, so an operator
    /// who expected two uids sees it in the first lines.
    static func logSelected(automatic: Bool, uid: uid_t, logger: Logger) {
        if automatic {
            logger.warning(
                "topology.selected",
                metadata: [
                    "topology": "one-uid", "uid": "\(uid)",
                    "reason": "not root: the front runs at the broker's uid, separated by its required sandbox",
                ])
        } else {
            logger.notice(
                "topology.selected", metadata: ["topology": "one-uid", "uid": "\(uid)", "reason": "--one-uid"])
        }
    }
}
