#if DEBUG
    import CSandbox
    import KMSRuntime
    import Logging

    #if canImport(Glibc)
        import Glibc
    #endif

    /// Debug builds only (`#if DEBUG`: SwiftPM's release configuration, which the Containerfile,
    /// the benchmarks and every package use, compiles none of this): with
    /// `VAULT_KUBE_KMS_SANDBOX_SELF_TEST` set, the front attempts the operations its sandbox must
    /// deny, right after each layer is applied, and logs one `sandbox.self_test` line per attempt.
    /// Tests/e2e/privsep/test_front_sandbox.py sets the variable through a `--front-executable` wrapper
    /// (spawn) or the front's environment (split). No client can reach it: it reads only the
    /// front's own environment, once, before the event loop runs. The value is `key=value`
    /// pairs separated by commas:
    ///
    /// - `secret=PATH`: open the secret-ID file; `pid=PID`: ptrace, signal 0 and read
    ///   /proc/PID/mem of that process (the broker; default the parent); `sigkill=1`: SIGKILL it;
    /// - `vault=A.B.C.D:PORT`: TCP connect there; `bind=PORT`: TCP bind there; `allowed=PORT`:
    ///   bind the health port (control: fails with EADDRINUSE, not EACCES);
    /// - `abstract=NAME`: connect to that abstract socket; `write=PATH`: create that file;
    ///   `exec=PATH`: execute it; `read=PATH`: read that file;
    /// - `kill=1`: finally make a system call the front never makes (the filter kills it).
    enum SandboxSelfTest {
        enum Phase: String {
            case afterLandlock = "landlock"
            case afterSeccomp = "seccomp"
        }

        static func settings() -> [String: String]? {
            guard let raw = EnvironmentFallback.value("VAULT_KUBE_KMS_SANDBOX_SELF_TEST") else { return nil }
            var result: [String: String] = [:]
            for pair in raw.split(separator: ",") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                if parts.count == 2 { result[String(parts[0])] = String(parts[1]) }
            }
            return result
        }

        static func run(_ phase: Phase, logger: Logger) {
            guard let settings = settings() else { return }
            var attempts: [(String, () -> Int32)] = []
            switch phase {
            case .afterLandlock:
                // getppid only here: after the filter it is a syscall the front never makes.
                let pid = settings["pid"].flatMap { pid_t($0) } ?? getppid()
                if let secret = settings["secret"] {
                    attempts.append(("open_secret_id", { kms_try_open(secret, O_RDONLY) }))
                }
                if let path = settings["read"] { attempts.append(("read_file", { kms_try_open(path, O_RDONLY) })) }
                attempts.append(("list_root", { kms_try_open("/", O_RDONLY | O_DIRECTORY) }))
                attempts.append(("open_broker_mem", { kms_try_open("/proc/\(pid)/mem", O_RDONLY) }))
                attempts.append(("ptrace_broker", { kms_try_ptrace_attach(pid) }))
                attempts.append(("signal0_broker", { kms_try_signal(pid, 0) }))
                if settings["sigkill"] == "1" {
                    attempts.append(("sigkill_broker", { kms_try_signal(pid, SIGKILL) }))
                }
                if let path = settings["write"] {
                    attempts.append(("create_file", { kms_try_open(path, O_WRONLY | O_CREAT | O_EXCL) }))
                }
                if let target = settings["vault"], let (host, port) = ipv4(target) {
                    attempts.append(("tcp_connect_vault", { kms_try_tcp_connect(host, port) }))
                }
                if let port = settings["bind"].flatMap({ UInt16($0) }) {
                    attempts.append(("tcp_bind_other", { kms_try_tcp_bind(port) }))
                }
                if let port = settings["allowed"].flatMap({ UInt16($0) }) {
                    attempts.append(("tcp_bind_health_port", { kms_try_tcp_bind(port) }))
                }
                if let name = settings["abstract"] {
                    attempts.append(("abstract_connect", { kms_try_abstract_connect(name) }))
                }
                if let path = settings["exec"] { attempts.append(("exec", { kms_try_exec(path) })) }
            case .afterSeccomp:
                attempts.append(("inet_socket", { kms_try_inet_socket() }))
            }
            for (name, attempt) in attempts {
                logger.notice(
                    "sandbox.self_test",
                    metadata: ["phase": "\(phase.rawValue)", "attempt": "\(name)", "result": "\(describe(attempt()))"])
            }
            if phase == .afterSeccomp && settings["kill"] == "1" {
                logger.notice("sandbox.self_test", metadata: ["phase": "seccomp", "attempt": "forbidden_syscall"])
                let result = kms_forbidden_syscall()
                logger.error(
                    "sandbox.self_test",
                    metadata: [
                        "phase": "seccomp", "attempt": "forbidden_syscall_survived", "result": "\(describe(result))",
                    ])
            }
        }

        static func ipv4(_ text: String) -> (UInt32, UInt16)? {
            let parts = text.split(separator: ":")
            guard parts.count == 2, let port = UInt16(parts[1]) else { return nil }
            let octets = parts[0].split(separator: ".").compactMap { UInt32($0) }
            guard octets.count == 4, octets.allSatisfy({ $0 < 256 }) else { return nil }
            return (octets.reduce(0) { $0 << 8 | $1 }, port)
        }

        static func describe(_ result: Int32) -> String {
            let names: [Int32: String] = [
                0: "allowed", EACCES: "EACCES", EPERM: "EPERM", EAFNOSUPPORT: "EAFNOSUPPORT",
                EADDRINUSE: "EADDRINUSE", ENOENT: "ENOENT", ECONNREFUSED: "ECONNREFUSED", ESRCH: "ESRCH",
            ]
            return names[result] ?? "errno \(result)"
        }
    }
#endif
