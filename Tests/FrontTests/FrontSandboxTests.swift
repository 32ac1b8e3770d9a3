import CSandbox
import KMSRuntime
import Testing

@testable import Front

/// What the front's sandbox must leave open for each configuration, how `--sandbox` parses, and
/// what `/metrics` shows of it. The sandbox itself is applied to a real process only (applying
/// it here would confine the test runner): Tests/e2e/privsep/test_front_sandbox.py.
struct FrontSandboxTests {
    private func configuration(
        brokerFD: String? = "3", brokerAddress: String? = nil, listenAddress: String? = nil,
        sandbox: String? = nil, environment: [String: String] = [:]
    ) throws(ConfigurationError) -> FrontConfiguration {
        try FrontConfiguration(
            brokerFD: brokerFD, brokerAddress: brokerAddress, listenFD: listenAddress == nil ? "4" : nil,
            listenAddress: listenAddress, logLevel: nil, logFormat: nil, sandbox: sandbox,
            environment: { environment[$0] }, defaultLogFormat: { .json })
    }

    @Test func theDefaultIsBestEffortAndTheModesParseFromFlagOrEnvironment() throws {
        #expect(try configuration().sandbox == .bestEffort)
        #expect(try configuration(sandbox: "required").sandbox == .required)
        #expect(try configuration(environment: ["VAULT_KUBE_KMS_SANDBOX": "off"]).sandbox == .off)
        #expect(
            try configuration(sandbox: "required", environment: ["VAULT_KUBE_KMS_SANDBOX": "off"]).sandbox == .required)
    }

    @Test func anUnknownModeIsAClearError() {
        #expect {
            try configuration(sandbox: "strict")
        } throws: { error in
            (error as? ConfigurationError)?.description == "invalid sandbox mode \"strict\" (best-effort|required|off)"
        }
    }

    @Test func theSpawnFrontNeedsOnlyItsTwoPortsAndNoDirectory() throws {
        var spawn = try configuration()
        spawn.healthPort = 18081
        spawn.metricsPort = 0
        let needs = FrontSandbox.needs(spawn, boundPath: nil, environment: { _ in nil })
        #expect(needs == FrontSandbox.Needs(removeDirectory: nil, bindPorts: [18081], abstractNeeded: nil))
    }

    @Test func aSocketTheFrontBoundItselfLeavesOnlyItsDirectoryRemovable() throws {
        let split = try configuration(
            brokerFD: nil, brokerAddress: "unix:///run/vkk/broker.sock", listenAddress: "unix:///run/kms/kms.sock")
        let needs = FrontSandbox.needs(split, boundPath: "/run/kms/kms.sock", environment: { _ in nil })
        #expect(needs.removeDirectory == "/run/kms")
        #expect(needs.bindPorts == [FrontConfiguration.defaultHealthPort, FrontConfiguration.defaultMetricsPort])
        #expect(needs.abstractNeeded == nil)
    }

    @Test func anAbstractBrokerOrNotifySocketKeepsAbstractSocketsReachable() throws {
        let abstractBroker = try configuration(brokerFD: nil, brokerAddress: "unix:///@vkk-broker")
        #expect(
            FrontSandbox.needs(abstractBroker, boundPath: nil, environment: { _ in nil }).abstractNeeded
                == "the broker address is an abstract socket")
        let notify = try configuration()
        #expect(
            FrontSandbox.needs(notify, boundPath: nil, environment: { $0 == "NOTIFY_SOCKET" ? "@/notify" : nil })
                .abstractNeeded == "NOTIFY_SOCKET is an abstract socket")
        #expect(
            FrontSandbox.needs(notify, boundPath: nil, environment: { $0 == "NOTIFY_SOCKET" ? "/run/notify" : nil })
                .abstractNeeded == nil)
    }

    @Test func aWeakerSandboxSaysWhatIsMissing() {
        var full = SandboxState(mode: .bestEffort)
        full.kernelLandlockABI = 7
        full.landlockABI = Int(KMS_LANDLOCK_ABI_SUPPORTED)
        full.scopedAbstractSockets = true
        full.seccomp = true
        #expect(full.weakness == nil)
        var old = full
        old.kernelLandlockABI = 3
        old.landlockABI = 3
        old.scopedAbstractSockets = false
        #expect(old.weakness == "Landlock ABI 3 enforced, 7 supported (the kernel offers 3)")
        var unscoped = full
        unscoped.scopedAbstractSockets = false
        unscoped.seccomp = false
        #expect(unscoped.weakness == "abstract sockets not scoped; no seccomp filter")
        #expect(SandboxState(mode: .off).weakness == "disabled by --sandbox off")
    }

    @Test func theFilterAllowsAListWithoutWhatACompromisedFrontWants() {
        let names = Set(
            (0..<kms_seccomp_allowed_count()).compactMap { kms_seccomp_allowed_name($0).map { String(cString: $0) } })
        #expect(names.count == Int(kms_seccomp_allowed_count()))
        #expect(names.isSuperset(of: ["read", "write", "epoll_wait", "accept4", "exit_group"]))
        for forbidden in [
            "ptrace", "execve", "execveat", "clone", "clone3", "fork", "kill", "process_vm_readv", "personality",
            "open_by_handle_at", "bpf", "mount", "setuid", "socketpair", "bind", "listen",
        ] {
            #expect(!names.contains(forbidden), "\(forbidden) must not be allowed")
        }
        #expect(kms_seccomp_allowed_name(-1) == nil)
        #expect(kms_seccomp_allowed_name(kms_seccomp_allowed_count()) == nil)
    }

    @Test func metricsShowTheEnforcedSandbox() {
        var figures = MetricsFigures(frontVersion: "0.1.0")
        var state = SandboxState(mode: .required)
        state.kernelLandlockABI = 7
        state.landlockABI = 7
        state.tcpRules = true
        state.scopedAbstractSockets = true
        state.scopedSignals = true
        state.seccomp = true
        state.allowedSyscalls = 63
        figures.sandbox = state
        let text = MetricsPage.render(figures)
        #expect(text.contains("vault_kube_kms_front_sandbox_landlock_abi 7\n"))
        #expect(text.contains("vault_kube_kms_front_sandbox_seccomp_syscalls 63\n"))
        #expect(text.contains("vault_kube_kms_front_sandbox_disabled 0\n"))
        #expect(
            text.contains(
                "vault_kube_kms_front_sandbox_info{mode=\"required\",kernel_abi=\"7\",tcp_rules=\"true\","
                    + "scoped_abstract_sockets=\"true\",scoped_signals=\"true\",seccomp=\"true\"} 1\n"))
        figures.sandbox = SandboxState(mode: .off)
        let off = MetricsPage.render(figures)
        #expect(off.contains("vault_kube_kms_front_sandbox_disabled 1\n"))
        #expect(off.contains("vault_kube_kms_front_sandbox_seccomp_syscalls 0\n"))
    }
}
