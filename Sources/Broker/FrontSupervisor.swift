import CSpawn
import KMSRuntime
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// Spawn topology: starts `vault-kube-kms-front` as the front user with the broker end of a
/// SOCK_SEQPACKET pair at fd 3 and the listening KMS socket at fd 4, restarts it with backoff
/// when it exits, and stops it on shutdown. The fork/exec and privilege drop are in CSpawn (C,
/// async-signal-safe); exits are observed through a pidfd in the event loop.
public final class FrontSupervisor {
    public struct Options: Sendable {
        public var executable: String
        public var plan: FrontPrivilegePlan
        public var listenFD: Int32
        public var arguments: [String]

        public init(executable: String, plan: FrontPrivilegePlan, listenFD: Int32, arguments: [String]) {
            self.executable = executable
            self.plan = plan
            self.listenFD = listenFD
            self.arguments = arguments
        }
    }

    /// First restart delay; doubles up to `maxBackoffMillis`, back to the start after a front
    /// has run for `stableMillis`.
    static let initialBackoffMillis: Int64 = 250
    static let maxBackoffMillis: Int64 = 30_000
    static let stableMillis: Int64 = 60_000
    /// How long a stopping front gets between SIGTERM and SIGKILL (its own drain is 5 s).
    static let stopGraceMillis: Int64 = 7_000

    private let options: Options
    private let loop: EventLoop
    private let logger: Logger
    private let attach: (Int32) -> Void
    private var pid: pid_t = 0
    private var pidFD: Int32 = -1
    private var startedAt: Int64 = 0
    private var backoff = initialBackoffMillis
    private var stopping = false
    private var onStopped: (() -> Void)?
    public private(set) var restarts = 0

    /// `attach` receives the broker's end of each new front connection.
    public init(options: Options, loop: EventLoop, logger: Logger, attach: @escaping (Int32) -> Void) {
        self.options = options
        self.loop = loop
        self.logger = logger
        self.attach = attach
    }

    public var frontPID: pid_t { pid }

    /// Finds `vault-kube-kms-front` next to the running executable.
    public static func defaultExecutable() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard length > 0 else { return "vault-kube-kms-front" }
        let path = String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let directory = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        return directory + "/vault-kube-kms-front"
    }

    /// Starts the front; throws if the very first start fails (a configuration problem).
    public func start() throws(ConfigurationError) {
        guard access(options.executable, X_OK) == 0 else {
            throw ConfigurationError("front executable \(options.executable) is missing or not executable")
        }
        if let failure = spawnOnce() { throw ConfigurationError(failure) }
    }

    /// Sends SIGTERM, waits for the exit (SIGKILL after the grace period), then calls `completion`.
    public func stop(completion: @escaping () -> Void) {
        stopping = true
        guard pid > 0 else { return completion() }
        onStopped = completion
        kill(pid, SIGTERM)
        let stoppingPID = pid
        loop.schedule(afterMillis: Self.stopGraceMillis) { [weak self] in
            guard let self, self.pid == stoppingPID, self.pid > 0 else { return }
            self.logger.warning("front.kill", metadata: ["pid": "\(stoppingPID)", "reason": "drain timeout"])
            kill(stoppingPID, SIGKILL)
        }
    }

    /// Returns a failure reason, or nil when the front is running.
    private func spawnOnce() -> String? {
        let brokerEnd: Int32
        let frontEnd: Int32
        do { (brokerEnd, frontEnd) = try UnixSocket.seqpacketPair() } catch { return "socketpair: \(error)" }
        let argv = [options.executable] + options.arguments
        var result = kms_spawn_result()
        withCStrings(argv) { argvPointers in
            withCStrings([]) { envPointers in
                let inherited: [Int32] = [frontEnd, options.listenFD]
                inherited.withUnsafeBufferPointer { fds in
                    var request = kms_spawn_request()
                    request.path = UnsafePointer(argvPointers[0])
                    request.argv = argvPointers
                    request.envp = envPointers
                    request.inherit_fds = fds.baseAddress
                    request.inherit_count = Int32(fds.count)
                    if case .switchUser(let user) = options.plan {
                        request.change_ids = 1
                        request.uid = user.uid
                        request.gid = user.gid
                    }
                    result = kms_spawn(&request)
                }
            }
        }
        close(frontEnd)
        guard result.failed_step == Int32(KMS_SPAWN_OK.rawValue) else {
            close(brokerEnd)
            if result.pid > 0 { var status: Int32 = 0; waitpid(result.pid, &status, 0) }
            let step = String(cString: kms_spawn_step_name(result.failed_step))
            return "starting the front failed at \(step): \(String(cString: strerror(result.error_number)))"
        }
        pid = result.pid
        startedAt = EventLoop.nowMillis()
        pidFD = kms_pidfd_open(pid)
        if pidFD >= 0 {
            try? loop.register(fd: pidFD, events: .readable) { [weak self] _ in self?.reap() }
        } else {
            // Kernels before 5.3: poll for the exit once a second.
            pollForExit()
        }
        logger.info("front.started", metadata: ["pid": "\(pid)", "user": "\(planDescription)"])
        attach(brokerEnd)
        return nil
    }

    private var planDescription: String {
        switch options.plan {
        case .switchUser(let user): "\(user)"
        case .sameUserInsecure: "same-user-insecure"
        case .oneUID(let uid): "one-uid (uid \(uid), sandbox required)"
        }
    }

    private func pollForExit() {
        loop.schedule(afterMillis: 1000) { [weak self] in
            guard let self, self.pid > 0 else { return }
            var status: Int32 = 0
            if waitpid(self.pid, &status, WNOHANG) == self.pid {
                self.exited(status: status)
            } else {
                self.pollForExit()
            }
        }
    }

    private func reap() {
        var status: Int32 = 0
        guard waitpid(pid, &status, WNOHANG) == pid else { return }
        loop.unregister(fd: pidFD)
        close(pidFD)
        pidFD = -1
        exited(status: status)
    }

    private func exited(status: Int32) {
        let exitedPID = pid
        pid = 0
        let ranFor = EventLoop.nowMillis() - startedAt
        let how = status & 0x7F == 0 ? "exit \((status >> 8) & 0xFF)" : "signal \(status & 0x7F)"
        if stopping {
            logger.info("front.stopped", metadata: ["pid": "\(exitedPID)", "status": "\(how)"])
            onStopped?()
            onStopped = nil
            return
        }
        if ranFor >= Self.stableMillis { backoff = Self.initialBackoffMillis }
        logger.error(
            "front.exited",
            metadata: ["pid": "\(exitedPID)", "status": "\(how)", "ran_ms": "\(ranFor)", "restart_in_ms": "\(backoff)"])
        let delay = backoff
        backoff = min(backoff * 2, Self.maxBackoffMillis)
        loop.schedule(afterMillis: delay) { [weak self] in
            guard let self, !self.stopping else { return }
            self.restarts += 1
            if let failure = self.spawnOnce() {
                self.logger.error("front.start_failed", metadata: ["reason": "\(failure)"])
                self.exited(status: 127 << 8)
            }
        }
    }
}

/// Lends `strings` as a NULL-terminated array of C strings for the duration of `body`.
func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
    var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    pointers.append(nil)
    defer { for pointer in pointers { free(pointer) } }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}
