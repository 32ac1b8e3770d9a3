import CSandbox
import KMSRuntime
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// `--sandbox`: how the front confines itself once its sockets are open (docs/security-model.md).
public enum SandboxMode: String, Equatable, Sendable, CaseIterable {
    /// The strongest sandbox the kernel offers; a weaker one is logged (`sandbox.weaker`) and shown
    /// in the metrics. The default in the two-uid topologies.
    case bestEffort = "best-effort"
    /// Landlock ABI 6 or newer (filesystem, TCP, abstract-socket and signal scoping) and the
    /// seccomp filter, or the front does not start. The broker asks for it in the one-uid topology.
    case required
    /// No sandbox, with a loud warning (`sandbox.disabled`) and a metric: for debugging only.
    case off
}

/// What the front enforced, for the start-up log line and `/metrics`.
struct SandboxState: Equatable {
    var mode: SandboxMode
    /// What the kernel offers (0: no Landlock) and what is enforced (0: none).
    var kernelLandlockABI = 0
    var landlockABI = 0
    var tcpRules = false
    var scopedAbstractSockets = false
    var scopedSignals = false
    var seccomp = false
    var allowedSyscalls = 0
    var kernelRelease = ""

    /// Why this is weaker than the binary supports (nil: it is not).
    var weakness: String? {
        if mode == .off { return "disabled by --sandbox off" }
        var missing: [String] = []
        if landlockABI < Int(KMS_LANDLOCK_ABI_SUPPORTED) {
            missing.append(
                "Landlock ABI \(landlockABI) enforced, \(KMS_LANDLOCK_ABI_SUPPORTED) supported "
                    + "(the kernel offers \(kernelLandlockABI))")
        }
        if landlockABI >= 6 && !scopedAbstractSockets { missing.append("abstract sockets not scoped") }
        if !seccomp { missing.append("no seccomp filter") }
        return missing.isEmpty ? nil : missing.joined(separator: "; ")
    }
}

/// The front's kernel sandbox, applied once, after every listening socket and the broker
/// connection are open and before the first byte from a client is read (FrontServer.run). After
/// it the front can open no file, bind no TCP port but its health and metrics ports, connect no
/// TCP socket, create no socket but a Unix one, reach no abstract socket and signal no process
/// outside its sandbox, ptrace nothing, exec nothing, and make no system call outside the list
/// of Sources/CSandbox/front_syscalls.inc.
enum FrontSandbox {
    /// What the rules must leave open for this configuration.
    struct Needs: Equatable {
        /// Directory of the KMS socket the front bound itself and unlinks on exit.
        var removeDirectory: String?
        var bindPorts: [UInt16]
        /// Why abstract sockets cannot be scoped (the broker or NOTIFY_SOCKET is abstract), or nil.
        var abstractNeeded: String?
    }

    static func needs(
        _ configuration: FrontConfiguration, boundPath: String?,
        environment: (String) -> String? = EnvironmentFallback.value
    ) -> Needs {
        var abstract: String?
        if case .address(.abstract) = configuration.broker { abstract = "the broker address is an abstract socket" }
        if let notify = environment("NOTIFY_SOCKET"), notify.hasPrefix("@") {
            abstract = "NOTIFY_SOCKET is an abstract socket"
        }
        return Needs(
            removeDirectory: boundPath.map(Self.directory(of:)),
            bindPorts: [configuration.healthPort, configuration.metricsPort].filter { $0 != 0 },
            abstractNeeded: abstract)
    }

    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// Applies the sandbox. Throws only in `.required` mode, when it cannot be had in full.
    static func apply(_ needs: Needs, mode: SandboxMode, logger: Logger) throws(ConfigurationError) -> SandboxState {
        let started = EventLoop.nowNanos()
        var state = SandboxState(mode: mode)
        state.kernelRelease = KernelRelease.current
        state.allowedSyscalls = Int(kms_seccomp_allowed_count())
        state.kernelLandlockABI = max(Int(kms_landlock_abi()), 0)
        guard mode != .off else {
            state.allowedSyscalls = 0
            logger.error(
                "sandbox.disabled",
                metadata: [
                    "reason": "--sandbox off: the front runs without Landlock and seccomp; for debugging only",
                    "kernel": "\(state.kernelRelease)",
                ])
            #if DEBUG
                SandboxSelfTest.run(.afterLandlock, logger: logger)
                SandboxSelfTest.run(.afterSeccomp, logger: logger)
            #endif
            return state
        }
        if mode == .required, let reason = needs.abstractNeeded {
            throw ConfigurationError(
                "--sandbox required: \(reason), which cannot be reached once abstract sockets are scoped")
        }

        // glibc loads the time zone on the first gmtime_r/localtime_r (the first log line's time
        // stamp): load it now, while /etc/localtime can still be opened.
        tzset()
        var landlock = kms_landlock_result()
        let applied = needs.bindPorts.withUnsafeBufferPointer { ports in
            withOptionalCString(needs.removeDirectory) { directory in
                var request = kms_landlock_request()
                request.remove_dir = directory
                request.bind_ports = ports.baseAddress
                request.bind_port_count = Int32(ports.count)
                request.scope_abstract_unix = needs.abstractNeeded == nil ? 1 : 0
                request.scope_signal = 1
                return kms_landlock_apply(&request, &landlock)
            }
        }
        state.landlockABI = Int(landlock.enforced_abi)
        state.tcpRules = landlock.net_rules != 0
        state.scopedAbstractSockets = landlock.scoped_abstract != 0
        state.scopedSignals = landlock.scoped_signal != 0
        if applied != 0 {
            let step = landlock.failed_step.map { String(cString: $0) } ?? "landlock"
            let reason = "\(step): \(String(cString: strerror(landlock.error_number)))"
            if mode == .required { throw ConfigurationError("--sandbox required: Landlock unavailable (\(reason))") }
            logger.warning("sandbox.landlock_unavailable", metadata: ["reason": "\(reason)"])
        } else if mode == .required && (state.landlockABI < 6 || !state.scopedSignals) {
            throw ConfigurationError(
                "--sandbox required: the kernel (\(state.kernelRelease)) offers Landlock ABI \(state.kernelLandlockABI); "
                    + "6 or newer is needed to scope signals and abstract sockets")
        }
        #if DEBUG
            SandboxSelfTest.run(.afterLandlock, logger: logger)
        #endif

        if kms_seccomp_apply() == 0 {
            state.seccomp = true
        } else {
            let reason = String(cString: strerror(errno))
            if mode == .required {
                throw ConfigurationError("--sandbox required: seccomp filter not loaded (\(reason))")
            }
            logger.warning("sandbox.seccomp_unavailable", metadata: ["reason": "\(reason)"])
        }
        #if DEBUG
            SandboxSelfTest.run(.afterSeccomp, logger: logger)
        #endif

        let metadata: Logger.Metadata = [
            "mode": "\(mode.rawValue)", "landlock_abi": "\(state.landlockABI)",
            "kernel_landlock_abi": "\(state.kernelLandlockABI)", "tcp_rules": "\(state.tcpRules)",
            "scoped_abstract_sockets": "\(state.scopedAbstractSockets)", "scoped_signals": "\(state.scopedSignals)",
            "seccomp": "\(state.seccomp)", "allowed_syscalls": "\(state.allowedSyscalls)",
            "kernel": "\(state.kernelRelease)", "apply_us": "\((EventLoop.nowNanos() - started) / 1000)",
        ]
        logger.info("sandbox.applied", metadata: metadata)
        if let weakness = state.weakness {
            var warning = metadata
            warning["reason"] = "\(weakness)"
            if let abstract = needs.abstractNeeded { warning["abstract_sockets"] = "\(abstract)" }
            logger.warning("sandbox.weaker", metadata: warning)
        }
        return state
    }

    private static func withOptionalCString<R>(_ text: String?, _ body: (UnsafePointer<CChar>?) -> R) -> R {
        guard let text else { return body(nil) }
        return text.withCString { body($0) }
    }
}
