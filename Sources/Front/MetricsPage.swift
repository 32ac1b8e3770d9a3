import KMSCore
import KMSRuntime

/// Everything `/metrics` shows, gathered at scrape time: the front's own figures and the last
/// METRICS answer of the broker. `MetricsPage.render` is a pure function of this.
struct MetricsFigures {
    var frontVersion: String
    /// From the broker's HELLO answer (empty before it).
    var brokerVersion: String = ""
    var calls: [CallMetrics.Key: CallMetrics.Histogram] = [:]
    var requestsInFlight: Int = 0
    var grpcConnections: Int = 0
    /// Connections closed at accept: refused by `--allowed-client-uid/-gid`, or over the limit.
    var refusedPeerConnections: UInt64 = 0
    var refusedLimitConnections: UInt64 = 0
    /// Configured observability ports the front could not bind ("health", "metrics").
    var unboundPorts: [String] = []
    /// 0 connecting (HELLO not answered), 1 ready, 2 lost.
    var brokerConnectionState: Int = 0
    /// Calls that waited for a starting broker (GRPCServer+BrokerWait.swift).
    var brokerWait = BrokerWaitFigures()
    /// Seconds since the broker last answered a HEARTBEAT (nil: never).
    var heartbeatAgeMillis: Int64?
    var front: ProcessStatistics = ProcessStatistics()
    var sandbox: SandboxState?
    /// The broker's last METRICS answer and its age (nil: none received yet).
    var broker: MetricsAnswer?
    var brokerAgeMillis: Int64?
    /// False with `--disable-runtime-metrics`: no `process_*` families.
    var runtimeMetrics = true
}

/// Renders `MetricsFigures` as Prometheus text (docs/metrics.md lists every family).
enum MetricsPage {
    static func render(_ figures: MetricsFigures) -> String {
        var out = PrometheusText()
        renderCalls(figures, &out)
        renderFront(figures, &out)
        if let sandbox = figures.sandbox { renderSandbox(sandbox, &out) }
        if let broker = figures.broker, broker.code == .ok { renderBroker(broker, figures, &out) }
        if figures.runtimeMetrics { renderProcesses(figures, &out) }
        return out.text
    }

    /// The KMS call histogram twice: as OpenTelemetry's `rpc.server.call.duration` (seconds) and
    /// as HashiCorp's plugin exports it, otelgrpc's older `rpc.server.duration` (milliseconds).
    private static func renderCalls(_ figures: MetricsFigures, _ out: inout PrometheusText) {
        let keys = figures.calls.keys.sorted()
        let histograms: [(String, String, [UInt64], (UInt64) -> String)] = [
            (
                "rpc_server_call_duration_seconds",
                "Duration of KMS gRPC calls (OpenTelemetry rpc.server.call.duration).",
                CallMetrics.secondsBucketMicros, { PrometheusText.seconds(micros: $0) }
            ),
            (
                "rpc_server_duration_milliseconds",
                "Duration of KMS gRPC calls in milliseconds (HashiCorp vault-kube-kms compatible).",
                CallMetrics.millisecondsBucketMicros, { PrometheusText.seconds(micros: $0 &* 1000) }
            ),
        ]
        for (family, help, bounds, unit) in histograms where !keys.isEmpty {
            out.family(family, .histogram, help)
            for key in keys {
                guard let histogram = figures.calls[key] else { continue }
                let labels = callLabels(key, hashicorp: family == "rpc_server_duration_milliseconds")
                for (bound, count) in zip(bounds, CallMetrics.cumulative(histogram, at: bounds)) {
                    out.sample(family + "_bucket", labels + [("le", unit(bound))], count)
                }
                out.sample(family + "_bucket", labels + [("le", "+Inf")], histogram.count)
                out.sample(family + "_sum", labels, unit(histogram.sumMicros))
                out.sample(family + "_count", labels, histogram.count)
            }
        }
        var requests: [String: UInt64] = [:]
        var errors: [String: UInt64] = [:]
        for (key, histogram) in figures.calls {
            requests[key.method, default: 0] += histogram.count
            if key.code != 0 { errors[key.method, default: 0] += histogram.count }
        }
        let methods =
            KMSMethod.allCases.map(\.rawValue)
            + (requests[CallMetrics.unknownMethod] != nil ? [CallMetrics.unknownMethod] : [])
        out.family("vault_kube_kms_requests_total", .counter, "KMS gRPC calls answered, by method.")
        for method in methods {
            out.sample("vault_kube_kms_requests_total", [("method", method)], requests[method] ?? 0)
        }
        out.family(
            "vault_kube_kms_request_errors_total", .counter, "KMS gRPC calls answered with a status other than OK.")
        for method in methods {
            out.sample("vault_kube_kms_request_errors_total", [("method", method)], errors[method] ?? 0)
        }
    }

    private static func renderFront(_ figures: MetricsFigures, _ out: inout PrometheusText) {
        gauge(
            &out, "vault_kube_kms_requests_in_flight", "KMS gRPC calls received and not yet answered.",
            UInt64(figures.requestsInFlight))
        gauge(
            &out, "vault_kube_kms_grpc_connections", "Open gRPC client connections of the front.",
            UInt64(figures.grpcConnections))
        out.family(
            "vault_kube_kms_observability_port_bound", .gauge,
            "1 when the front serves its configured health port (the metrics port is this one), 0 when it could not bind it."
        )
        out.sample(
            "vault_kube_kms_observability_port_bound", [("port", "health")],
            figures.unboundPorts.contains("health") ? 0 : 1)
        out.family(
            "vault_kube_kms_grpc_connections_refused_total", .counter,
            "gRPC client connections closed at accept, by reason (peer: not an allowed uid/gid; limit).")
        out.sample(
            "vault_kube_kms_grpc_connections_refused_total", [("reason", "peer")], figures.refusedPeerConnections)
        out.sample(
            "vault_kube_kms_grpc_connections_refused_total", [("reason", "limit")], figures.refusedLimitConnections)
        gauge(
            &out, "vault_kube_kms_broker_connection_state",
            "Front to broker connection: 0 connecting, 1 ready, 2 lost.", UInt64(figures.brokerConnectionState))
        out.family(
            "vault_kube_kms_broker_wait_calls_total", .counter,
            "KMS calls that waited for a starting broker within their deadline.")
        out.sample("vault_kube_kms_broker_wait_calls_total", [], figures.brokerWait.waited)
        out.family(
            "vault_kube_kms_broker_wait_outcomes_total", .counter,
            "How waits for the broker ended: served by the ready broker, gave_up (deadline near or startup over), queue_full (could not wait)."
        )
        for (outcome, count) in [
            ("served", figures.brokerWait.served), ("gave_up", figures.brokerWait.gaveUp),
            ("queue_full", figures.brokerWait.queueFull),
        ] {
            out.sample("vault_kube_kms_broker_wait_outcomes_total", [("outcome", outcome)], count)
        }
        gauge(
            &out, "vault_kube_kms_broker_waiting_calls", "KMS calls waiting now for the broker connection.",
            UInt64(figures.brokerWait.waiting))
        if let age = figures.heartbeatAgeMillis {
            out.family(
                "vault_kube_kms_broker_heartbeat_age_seconds", .gauge,
                "Seconds since the broker last answered a heartbeat.")
            out.sample("vault_kube_kms_broker_heartbeat_age_seconds", [], micros: UInt64(max(age, 0)) * 1000)
        }
        if let age = figures.brokerAgeMillis {
            out.family("vault_kube_kms_broker_metrics_age_seconds", .gauge, "Age of the broker figures shown here.")
            out.sample("vault_kube_kms_broker_metrics_age_seconds", [], micros: UInt64(max(age, 0)) * 1000)
        }
        out.family(
            "vault_kube_kms_build_info", .gauge, "Versions of the front and broker, the broker's OpenSSL and FIPS mode."
        )
        var fips = "unknown"
        if let flag = figures.broker?.values[.fipsEnabled] { fips = flag == 1 ? "true" : "false" }
        let openssl: String = figures.broker?.opensslVersion ?? ""
        out.sample(
            "vault_kube_kms_build_info",
            [
                ("version", figures.frontVersion), ("broker_version", figures.brokerVersion),
                ("openssl_version", openssl), ("fips", fips),
            ], 1)
    }

    private static func renderSandbox(_ sandbox: SandboxState, _ out: inout PrometheusText) {
        gauge(
            &out, "vault_kube_kms_front_sandbox_landlock_abi",
            "Landlock ABI the front enforces (0: none); the kernel's own is the kernel_abi label.",
            UInt64(sandbox.landlockABI))
        out.family(
            "vault_kube_kms_front_sandbox_info", .gauge,
            "The front's sandbox: mode, kernel Landlock ABI, scopes, TCP rules and seccomp filter.")
        out.sample(
            "vault_kube_kms_front_sandbox_info",
            [
                ("mode", sandbox.mode.rawValue), ("kernel_abi", "\(sandbox.kernelLandlockABI)"),
                ("tcp_rules", "\(sandbox.tcpRules)"), ("scoped_abstract_sockets", "\(sandbox.scopedAbstractSockets)"),
                ("scoped_signals", "\(sandbox.scopedSignals)"), ("seccomp", "\(sandbox.seccomp)"),
            ], 1)
        gauge(
            &out, "vault_kube_kms_front_sandbox_seccomp_syscalls",
            "System calls the front's seccomp filter allows (0: no filter).",
            UInt64(sandbox.seccomp ? sandbox.allowedSyscalls : 0))
        gauge(
            &out, "vault_kube_kms_front_sandbox_disabled", "1 when the front runs with --sandbox off (debugging only).",
            sandbox.mode == .off ? 1 : 0)
    }

    private static func renderBroker(_ broker: MetricsAnswer, _ figures: MetricsFigures, _ out: inout PrometheusText) {
        let v = broker.values
        let operations: [(String, BrokerMetricID, BrokerMetricID, BrokerMetricID)] = [
            ("login", .vaultLoginTotal, .vaultLoginErrors, .vaultLoginMicros),
            ("renew", .vaultRenewTotal, .vaultRenewErrors, .vaultRenewMicros),
            ("encrypt", .vaultEncryptTotal, .vaultEncryptErrors, .vaultEncryptMicros),
            ("decrypt", .vaultDecryptTotal, .vaultDecryptErrors, .vaultDecryptMicros),
            ("read_key", .vaultReadKeyTotal, .vaultReadKeyErrors, .vaultReadKeyMicros),
            ("license", .vaultLicenseTotal, .vaultLicenseErrors, .vaultLicenseMicros),
            ("other", .vaultOtherTotal, .vaultOtherErrors, .vaultOtherMicros),
        ]
        out.family("vault_kube_kms_vault_requests_total", .counter, "Vault API calls made by the broker, by operation.")
        for (name, total, _, _) in operations {
            out.sample("vault_kube_kms_vault_requests_total", [("operation", name)], v[total] ?? 0)
        }
        out.family(
            "vault_kube_kms_vault_request_errors_total", .counter, "Vault API calls without a 2xx answer, by operation."
        )
        for (name, _, errors, _) in operations {
            out.sample("vault_kube_kms_vault_request_errors_total", [("operation", name)], v[errors] ?? 0)
        }
        out.family(
            "vault_kube_kms_vault_request_duration_seconds", .summary, "Duration of Vault API calls, by operation.")
        for (name, total, _, micros) in operations {
            out.sample(
                "vault_kube_kms_vault_request_duration_seconds_sum", [("operation", name)], micros: v[micros] ?? 0)
            out.sample("vault_kube_kms_vault_request_duration_seconds_count", [("operation", name)], v[total] ?? 0)
        }
        gauge(
            &out, "vault_kube_kms_vault_requests_in_flight", "Vault API calls sent and not yet answered.",
            v[.vaultInFlight])
        renderAddresses(v, &out)
        for (family, successes, failures, help) in [
            (
                "vault_kube_kms_login_total", BrokerMetricID.loginSuccesses, BrokerMetricID.loginFailures,
                "AppRole logins by outcome."
            ),
            ("vault_kube_kms_token_renewals_total", .renewalSuccesses, .renewalFailures, "Token renewals by outcome."),
            (
                "vault_kube_kms_deep_probes_total", .deepProbeSuccesses, .deepProbeFailures,
                "Encrypt/Decrypt round trips the broker ran against Vault, by outcome."
            ),
        ] {
            out.family(family, .counter, help)
            out.sample(family, [("outcome", "success")], v[successes] ?? 0)
            out.sample(family, [("outcome", "failure")], v[failures] ?? 0)
        }
        gauge(&out, "vault_kube_kms_token_valid", "1 while the broker holds an unexpired Vault token.", v[.tokenValid])
        gauge(
            &out, "vault_kube_kms_token_expiry_seconds", "Seconds until the broker's token lease ends (0: no token).",
            v[.tokenSecondsToExpiry])
        gauge(
            &out, "vault_kube_kms_key_active_version", "Transit key version used for Encrypt (0: unknown).",
            v[.activeKeyVersion])
        if let hash = v[.activeKeyIDHash], hash != 0 {
            out.family(
                "vault_kube_kms_key_id_info", .gauge, "FNV-1a 64 hash of the active key_id (changes on rotation).")
            out.sample("vault_kube_kms_key_id_info", [("key_id_hash", hex16(hash))], 1)
        }
        gauge(
            &out, "vault_kube_kms_key_versions_known", "Key versions whose key_id the broker derives.",
            v[.keyVersionsKnown])
        gauge(
            &out, "vault_kube_kms_key_state", "Key metadata state: 0 not read yet, 1 healthy, 2 unhealthy.",
            v[.keyState])
        gauge(
            &out, "vault_kube_kms_key_pending_version",
            "Newer key version seen once and awaiting confirmation before use (0: none).", v[.pendingKeyVersion])
        gauge(
            &out, "vault_kube_kms_key_rolled_back",
            "1 when Vault reported an older or re-created latest key version and the broker refused it.",
            v[.keyRolledBack])
        if let edition = v[.vaultEdition] {
            let names = ["unknown", "community", "enterprise", "openbao"]
            out.family("vault_kube_kms_vault_edition_info", .gauge, "Vault edition suggested by sys/license/status.")
            out.sample(
                "vault_kube_kms_vault_edition_info",
                [("edition", names.indices.contains(Int(edition)) ? names[Int(edition)] : "unknown")], 1)
        }
        gauge(&out, "vault_kube_kms_broker_healthy", "1 when the broker's Status healthz is ok.", v[.brokerHealthy])
        gauge(
            &out, "vault_kube_kms_vault_tls_verification_disabled",
            "1 when TLS verification of Vault is disabled (development only).", v[.tlsVerificationDisabled])
        renderKeyIDHashes(v, &out)
        renderTakeover(v, &out)
        renderVSO(v, &out)
        gauge(
            &out, "vault_kube_kms_broker_front_connections", "Front connections open at the broker.",
            v[.frontConnections])
        gauge(
            &out, "vault_kube_kms_broker_requests_in_flight", "Front requests the broker is working on.",
            v[.frontRequestsInFlight])
    }

    /// One `vault_kube_kms_vault_address_in_use{index}` sample per configured address (at most
    /// `maxAddressLabels`: bounded), 1 for the one serving.
    private static func renderAddresses(_ v: [BrokerMetricID: UInt64], _ out: inout PrometheusText) {
        guard let count = v[.vaultAddressCount], count > 0 else { return }
        let index = v[.vaultAddressIndex] ?? 0
        out.family(
            "vault_kube_kms_vault_address_in_use", .gauge,
            "1 for the Vault address (index in --vault-address, 0 = first) the broker uses, 0 for the others.")
        for candidate in 0..<min(count, maxAddressLabels) {
            out.sample("vault_kube_kms_vault_address_in_use", [("index", "\(candidate)")], candidate == index ? 1 : 0)
        }
        out.family(
            "vault_kube_kms_vault_address_failovers_total", .counter,
            "Times the broker moved to the next Vault address because the one in use could not serve.")
        out.sample("vault_kube_kms_vault_address_failovers_total", [], v[.vaultAddressFailovers] ?? 0)
    }

    /// The broker accepts at most 8 addresses; a larger count from a broken broker is cut here.
    static let maxAddressLabels: UInt64 = 8

    /// The active and known key_ids as kube-apiserver labels them (`sha256:<hex>` of the key_id),
    /// so PromQL can join `apiserver_envelope_encryption_key_id_hash_*` with them.
    private static func renderKeyIDHashes(_ v: [BrokerMetricID: UInt64], _ out: inout PrometheusText) {
        var rows: [(String, String, String)] = []
        for slot in 0..<BrokerMetricID.keyIDSlots {
            guard let version = v[BrokerMetricID.keyIDSlot(slot, word: 0)!], version != 0 else { continue }
            var hex = "sha256:"
            for word in 1...4 { hex += hex16(v[BrokerMetricID.keyIDSlot(slot, word: word)!] ?? 0) }
            rows.append((hex, String(version), slot == 0 ? "active" : "known"))
        }
        if !rows.isEmpty {
            out.family(
                "vault_kube_kms_key_id_hash_info", .gauge,
                "Active and known key_ids hashed as kube-apiserver's key_id_hash label (sha256 of the key_id).")
            for (hash, version, state) in rows {
                out.sample(
                    "vault_kube_kms_key_id_hash_info",
                    [("key_id_hash", hash), ("key_version", version), ("state", state)], 1)
            }
        }
        gauge(
            &out, "vault_kube_kms_key_active_since_timestamp_seconds",
            "Unix time when this broker adopted the active key version (0: not yet).", v[.activeKeyVersionSince])
    }

    /// Reads of data another plugin wrote (`--accept-foreign-key-ids`).
    private static func renderTakeover(_ v: [BrokerMetricID: UInt64], _ out: inout PrometheusText) {
        if let reads = v[.foreignKeyIDDecrypts] {
            out.family(
                "vault_kube_kms_foreign_key_id_decrypts_total", .counter,
                "Decrypts answered for a key_id of another plugin (takeover mode); stops rising once storage is migrated."
            )
            out.sample("vault_kube_kms_foreign_key_id_decrypts_total", [], reads)
        }
        if let refused = v[.foreignKeyIDRefused] {
            out.family(
                "vault_kube_kms_foreign_key_id_refusals_total", .counter,
                "Decrypts refused because the key_id was of another plugin (mode off, or version not known).")
            out.sample("vault_kube_kms_foreign_key_id_refusals_total", [], refused)
        }
    }

    /// HashiCorp's Vault client families (`vso_client_operations_*`, from the Vault Secrets
    /// Operator's client): operations login, renew, read (GETs) and write (everything else).
    private static func renderVSO(_ v: [BrokerMetricID: UInt64], _ out: inout PrometheusText) {
        let ours: [(String, BrokerMetricID, BrokerMetricID, BrokerMetricID)] = [
            ("login", .vaultLoginTotal, .vaultLoginErrors, .vaultLoginMicros),
            ("renew", .vaultRenewTotal, .vaultRenewErrors, .vaultRenewMicros),
            ("read", .vaultReadKeyTotal, .vaultReadKeyErrors, .vaultReadKeyMicros),
            ("read", .vaultLicenseTotal, .vaultLicenseErrors, .vaultLicenseMicros),
            ("write", .vaultEncryptTotal, .vaultEncryptErrors, .vaultEncryptMicros),
            ("write", .vaultDecryptTotal, .vaultDecryptErrors, .vaultDecryptMicros),
            ("write", .vaultOtherTotal, .vaultOtherErrors, .vaultOtherMicros),
        ]
        let operations = ["login", "renew", "read", "write"]
        var totals: [String: (count: UInt64, errors: UInt64, micros: UInt64)] = [:]
        for (name, total, errors, micros) in ours {
            let sum = totals[name, default: (0, 0, 0)]
            totals[name] = (
                sum.count &+ (v[total] ?? 0), sum.errors &+ (v[errors] ?? 0), sum.micros &+ (v[micros] ?? 0)
            )
        }
        let connection = ("vault_connection", "default")
        out.family(
            "vso_client_operations_total", .counter, "Vault client operations (HashiCorp vault-kube-kms compatible).")
        for name in operations {
            out.sample("vso_client_operations_total", [("operation", name), connection], totals[name]?.count ?? 0)
        }
        out.family(
            "vso_client_operations_errors_total", .counter,
            "Vault client operations without a 2xx answer (HashiCorp vault-kube-kms compatible).")
        for name in operations {
            out.sample(
                "vso_client_operations_errors_total", [("operation", name), connection], totals[name]?.errors ?? 0)
        }
        guard v[BrokerMetricID.vsoBucket(operation: 0, bucket: 0)!] != nil else { return }
        out.family(
            "vso_client_operations_time_seconds", .histogram,
            "Length of time per Vault client operation (HashiCorp vault-kube-kms compatible).")
        for (index, name) in operations.enumerated() {
            let labels = [("operation", name), connection]
            let count = totals[name]?.count ?? 0
            var cumulative: UInt64 = 0
            for (bucket, bound) in VaultDurationBuckets.boundsMillis.enumerated() {
                cumulative &+= v[BrokerMetricID.vsoBucket(operation: index, bucket: bucket)!] ?? 0
                out.sample(
                    "vso_client_operations_time_seconds_bucket",
                    labels + [("le", PrometheusText.seconds(micros: UInt64(bound) * 1000))], min(cumulative, count))
            }
            out.sample("vso_client_operations_time_seconds_bucket", labels + [("le", "+Inf")], count)
            out.sample("vso_client_operations_time_seconds_sum", labels, micros: totals[name]?.micros ?? 0)
            out.sample("vso_client_operations_time_seconds_count", labels, count)
        }
    }

    private static func renderProcesses(_ figures: MetricsFigures, _ out: inout PrometheusText) {
        let broker = figures.broker?.values ?? [:]
        let rows: [(String, ProcessStatistics)] = [
            ("front", figures.front),
            (
                "broker",
                ProcessStatistics(
                    cpuMicros: broker[.processCPUMicros], residentBytes: broker[.processResidentBytes],
                    openFDs: broker[.processOpenFDs], startTimeSeconds: broker[.processStartTimeSeconds])
            ),
        ]
        out.family("process_cpu_seconds_total", .counter, "User and system CPU time of each process.")
        for (name, stats) in rows {
            if let cpu = stats.cpuMicros { out.sample("process_cpu_seconds_total", [("process", name)], micros: cpu) }
        }
        out.family("process_resident_memory_bytes", .gauge, "Resident memory of each process.")
        for (name, stats) in rows {
            if let rss = stats.residentBytes { out.sample("process_resident_memory_bytes", [("process", name)], rss) }
        }
        out.family("process_open_fds", .gauge, "Open file descriptors of each process.")
        for (name, stats) in rows {
            if let fds = stats.openFDs { out.sample("process_open_fds", [("process", name)], fds) }
        }
        out.family("process_start_time_seconds", .gauge, "Start time of each process since the Unix epoch.")
        for (name, stats) in rows {
            if let start = stats.startTimeSeconds {
                out.sample("process_start_time_seconds", [("process", name)], start)
            }
        }
    }

    private static func gauge(_ out: inout PrometheusText, _ name: String, _ help: String, _ value: UInt64?) {
        guard let value else { return }
        out.family(name, .gauge, help)
        out.sample(name, [], value)
    }

    /// OpenTelemetry's RPC attributes as Prometheus labels. A path naming no KMS method is
    /// `_OTHER` (a bounded value, as the conventions ask); the status code travels numeric
    /// (`rpc.grpc.status_code`) and, on our own family, also by name (`rpc.response.status_code`
    /// of the newer conventions).
    static func callLabels(_ key: CallMetrics.Key, hashicorp: Bool) -> [(String, String)] {
        let known = key.method != CallMetrics.unknownMethod
        var labels = [
            ("rpc_system", "grpc"), ("rpc_service", known ? "v2.KeyManagementService" : "_OTHER"),
            ("rpc_method", known ? key.method : "_OTHER"), ("rpc_grpc_status_code", String(key.code)),
        ]
        if !hashicorp { labels.append(("rpc_response_status_code", codeName(key.code))) }
        return labels
    }

    static func hex16(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }

    /// gRPC status code names as in the gRPC spec (`OK`, `INVALID_ARGUMENT`, ...).
    static func codeName(_ code: Int) -> String {
        let names = [
            "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
            "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
            "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
        ]
        return names.indices.contains(code) ? names[code] : "UNKNOWN"
    }
}
