import KMSCore
import KMSRuntime
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// The front's health and metrics ports (metrics on 127.0.0.1 only, health on `--health-address`,
/// default 127.0.0.1; port 0 disables one): `/livez` (both processes alive: the broker answered
/// a HEARTBEAT recently), `/readyz/deep` (a STATUS asked now answers "ok"), `/healthz` and
/// `/readyz` as `healthMode` says (`HealthMode`), and `/metrics` (Prometheus text for both
/// processes; the broker's figures come from its METRICS answer, polled every
/// `pollIntervalMillis` and on each scrape). docs/metrics.md describes every metric.
final class FrontObservability {
    /// How often the front sends HEARTBEAT and METRICS to the broker.
    static let pollIntervalMillis: Int64 = 5_000
    /// `/livez` fails when the broker's last HEARTBEAT answer is older than this: three missed
    /// polls, so one slow turn of the broker's loop does not restart anything.
    static let heartbeatStaleMillis: Int64 = 3 * pollIntervalMillis
    /// How long a scrape or a `/readyz` waits for the broker before answering from what it has.
    static let brokerAnswerWaitMillis: Int64 = 1_000

    private unowned let loop: EventLoop
    private let logger: Logger
    private let broker: BrokerClient
    private let grpc: GRPCServer
    private var servers: [HealthServer] = []
    private var lastHeartbeatMillis: Int64?
    private var lastMetrics: (answer: MetricsAnswer, atMillis: Int64)?
    private var pollTimer: EventLoop.TimerID?
    private var brokerVersion = ""
    /// Set from the configuration before `start`.
    var healthAddress: HealthBindAddress = .loopback
    var healthMode: HealthMode = .deep
    var runtimeMetrics = true
    /// Opened before the sandbox, which denies /proc afterwards.
    private let processStatistics = ProcessStatisticsReader()
    /// What the sandbox enforced (set once, at start-up).
    var sandbox: SandboxState?

    init(loop: EventLoop, broker: BrokerClient, grpc: GRPCServer, logger: Logger) {
        self.loop = loop
        self.broker = broker
        self.grpc = grpc
        self.logger = logger
    }

    /// Binding attempts per port at start, `bindRetryMillis` apart (a predecessor still exiting).
    static let bindAttempts = 3
    static let bindRetryMillis: UInt32 = 200
    /// Ports that could not be bound ("health", "metrics"): exported as
    /// `vault_kube_kms_observability_port_bound 0`.
    private(set) var unboundPorts: [String] = []

    /// Opens the ports. A port that cannot be bound after `bindAttempts` is logged as an error
    /// and reported (`vault_kube_kms_observability_port_bound`), but left closed: the KMS socket is what
    /// kube-apiserver needs, and it must not go down for an observability port. Another process
    /// on that port (a squatter) answers probes in the front's name meanwhile, which is why the
    /// shipped Pods can use exec probes instead (`vault-kube-kms probe`). The attempts happen here,
    /// before the sandbox, which allows no new TCP socket afterwards.
    func start(healthPort: UInt16, metricsPort: UInt16) {
        for (address, port, name, handler) in [
            (healthAddress, healthPort, "health", handleHealth as HealthServer.Handler),
            (HealthBindAddress.loopback, metricsPort, "metrics", handleMetrics as HealthServer.Handler),
        ] where port != 0 {
            let shown = address.withPort(port)
            var lastError: SystemError?
            for attempt in 1...Self.bindAttempts {
                do {
                    servers.append(
                        try HealthServer(address: address, port: port, loop: loop, logger: logger, handler: handler))
                    logger.info("\(name).listening", metadata: ["address": "\(shown)", "attempt": "\(attempt)"])
                    lastError = nil
                    break
                } catch {
                    lastError = error
                    if attempt < Self.bindAttempts { usleep(Self.bindRetryMillis * 1000) }
                }
            }
            if let lastError {
                unboundPorts.append(name)
                // Who listens there instead (a squatter, or a predecessor still running): named in
                // the log, since the squatter is what answers the port's probes.
                let holders = TCPPortHolder.listeningUIDs(port: port)
                logger.error(
                    "\(name).bind_failed",
                    metadata: [
                        "address": "\(shown)", "reason": "\(lastError)", "attempts": "\(Self.bindAttempts)",
                        "holder_uid":
                            "\(holders.isEmpty ? "none found" : holders.map(String.init).joined(separator: ","))",
                        "consequence":
                            "not served and not retried; \(shown) is not ours: whatever holds it answers in the front's name",
                    ])
            }
        }
        schedulePoll(afterMillis: 0)
    }

    /// The broker answered HELLO: remember its version and poll at once, so `/livez` does not
    /// wait a whole poll interval for the first heartbeat.
    func brokerReady(version: String) {
        brokerVersion = version
        if let pollTimer { loop.cancel(pollTimer) }
        schedulePoll(afterMillis: 0)
    }

    func stop() {
        for server in servers { server.stop() }
        servers = []
        if let pollTimer { loop.cancel(pollTimer) }
        pollTimer = nil
    }

    // MARK: Broker polling

    private func schedulePoll(afterMillis delay: Int64) {
        pollTimer = loop.schedule(afterMillis: delay) { [weak self] in
            guard let self else { return }
            self.poll()
            self.schedulePoll(afterMillis: Self.pollIntervalMillis)
        }
    }

    private func poll() {
        ask(.heartbeat) { [weak self] answer in
            guard let self, case .heartbeat(let heartbeat) = answer, heartbeat.code == .ok else { return }
            self.lastHeartbeatMillis = EventLoop.nowMillis()
        }
        refreshMetrics { _ in }
    }

    private func refreshMetrics(_ completion: @escaping (Bool) -> Void) {
        ask(.metrics) { [weak self] answer in
            guard let self, case .metrics(let metrics) = answer else { return completion(false) }
            self.lastMetrics = (metrics, EventLoop.nowMillis())
            completion(true)
        }
    }

    /// Sends a request; `completion` gets the answer, or nil when the broker is not ready or did
    /// not answer within `brokerAnswerWaitMillis` (BrokerClient calls it once, and checks and
    /// drops a later answer).
    private func ask(_ request: BrokerRequest, completion: @escaping (BrokerAnswer?) -> Void) {
        broker.send(request, deadlineMillis: EventLoop.nowMillis() + Self.brokerAnswerWaitMillis) { result in
            completion(try? result.get())
        }
    }

    // MARK: Handlers

    private func handleHealth(_ request: HTTPRequestParser.Request, _ respond: @escaping (HTTPResponse) -> Void) {
        switch (request.path, healthMode) {
        case ("/livez", _), ("/healthz", .deep):
            let (alive, reason) = liveness()
            respond(HTTPResponse(status: alive ? 200 : 503, body: reason + "\n"))
        case ("/readyz/deep", _), ("/readyz", .deep):
            deepReadiness(respond)
        case ("/healthz", .hashicorp):
            // HashiCorp's liveness: the process answers, nothing more.
            respond(HTTPResponse(status: 200, body: "ok\n"))
        case ("/readyz", .hashicorp):
            // HashiCorp's readiness: gRPC serves (the KMS socket accepts and, here, the broker
            // answered HELLO, without which every call is UNAVAILABLE).
            if case .ready = broker.state {
                respond(HTTPResponse(status: 200, body: "ok\n"))
            } else {
                respond(HTTPResponse(status: 500, body: "plugin is not ready\n"))
            }
        default:
            respond(HTTPResponse(status: 404, body: "not found\n"))
        }
    }

    /// A STATUS asked now answers "ok": Vault reachable, token valid, key usable. With several
    /// Vault addresses a second line says which one serves (`vault_address_index=N of M`, N from
    /// 0 in `--vault-address` order), read from a METRICS asked right after; with one address the
    /// body is the healthz line alone, as it always was.
    private func deepReadiness(_ respond: @escaping (HTTPResponse) -> Void) {
        ask(.status) { [weak self] answer in
            guard case .status(let answer) = answer else {
                return respond(HTTPResponse(status: 503, body: "broker did not answer\n"))
            }
            let healthz = answer.code == .ok ? answer.healthz : "broker: \(answer.code)"
            let status = healthz == "ok" ? 200 : 503
            guard let self else { return respond(HTTPResponse(status: status, body: healthz + "\n")) }
            self.refreshMetrics { [weak self] fresh in
                let line = fresh ? (self?.addressLine() ?? "") : ""
                respond(HTTPResponse(status: status, body: healthz + "\n" + line))
            }
        }
    }

    /// `vault_address_index=N of M\n` when the broker has several Vault addresses, else "".
    func addressLine() -> String { Self.addressLine(lastMetrics?.answer.values) }

    /// The same from a METRICS answer's values (nil: none yet).
    static func addressLine(_ values: [BrokerMetricID: UInt64]?) -> String {
        guard let values, let count = values[.vaultAddressCount], count > 1, let index = values[.vaultAddressIndex]
        else { return "" }
        return "vault_address_index=\(index) of \(count)\n"
    }

    /// Alive when the broker connection is up and its loop answered a HEARTBEAT recently (this
    /// answer itself proves the front's loop is turning).
    func liveness() -> (Bool, String) {
        guard case .ready = broker.state else {
            return (false, broker.state == .failed ? "broker connection lost" : "broker not connected yet")
        }
        guard let last = lastHeartbeatMillis else { return (false, "no heartbeat from the broker yet") }
        let age = EventLoop.nowMillis() - last
        guard age <= Self.heartbeatStaleMillis else { return (false, "broker heartbeat \(age / 1000) s old") }
        return (true, "ok")
    }

    private func handleMetrics(_ request: HTTPRequestParser.Request, _ respond: @escaping (HTTPResponse) -> Void) {
        guard request.path == "/metrics" else { return respond(HTTPResponse(status: 404, body: "not found\n")) }
        refreshMetrics { [weak self] _ in
            guard let self else { return }
            respond(
                HTTPResponse(
                    status: 200, contentType: PrometheusText.contentType, body: MetricsPage.render(self.figures())))
        }
    }

    private func figures() -> MetricsFigures {
        let now = EventLoop.nowMillis()
        var figures = MetricsFigures(frontVersion: FrontProcess.version)
        figures.brokerVersion = brokerVersion
        figures.calls = grpc.callMetrics.histograms
        figures.requestsInFlight = grpc.callsInFlight
        figures.grpcConnections = grpc.connections.count
        figures.unboundPorts = unboundPorts
        figures.refusedPeerConnections = grpc.refusedPeerConnections
        figures.refusedLimitConnections = grpc.refusedLimitConnections
        figures.brokerWait = grpc.brokerWaitFigures
        switch broker.state {
        case .awaitingHello: figures.brokerConnectionState = 0
        case .ready: figures.brokerConnectionState = 1
        case .failed: figures.brokerConnectionState = 2
        }
        figures.heartbeatAgeMillis = lastHeartbeatMillis.map { now - $0 }
        figures.runtimeMetrics = runtimeMetrics
        figures.front = processStatistics.current()
        figures.sandbox = sandbox
        figures.broker = lastMetrics?.answer
        figures.brokerAgeMillis = lastMetrics.map { now - $0.atMillis }
        return figures
    }
}
