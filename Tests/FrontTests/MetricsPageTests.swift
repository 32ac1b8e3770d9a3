import KMSCore
import KMSRuntime
import Testing

@testable import Front

/// The `/metrics` page: Prometheus text shape, histogram arithmetic, broker figures, and the
/// rule that no label carries a path, key name or uid.
struct MetricsPageTests {
    private func figures() -> MetricsFigures {
        let calls = CallMetrics()
        calls.record(method: .encrypt, code: .ok, micros: 80)
        calls.record(method: .encrypt, code: .ok, micros: 3_000)
        calls.record(method: .decrypt, code: .invalidArgument, micros: 20_000_000)
        calls.record(method: nil, code: .unimplemented, micros: 50)
        var figures = MetricsFigures(frontVersion: "0.1.0")
        figures.brokerVersion = "0.1.0"
        figures.calls = calls.histograms
        figures.brokerConnectionState = 1
        figures.front = ProcessStatistics(cpuMicros: 1_500_000, residentBytes: 4096, openFDs: 9, startTimeSeconds: 1)
        figures.broker = MetricsAnswer(
            code: .ok, opensslVersion: "OpenSSL 3.0.15 3 Sep 2024",
            values: [
                .vaultLoginTotal: 3, .vaultLoginErrors: 1, .loginSuccesses: 2, .loginFailures: 1, .vaultEdition: 2,
                .vaultEncryptTotal: 2, .vaultEncryptMicros: 2_500,
                .activeKeyVersion: 4, .activeKeyIDHash: 0xAB, .tokenSecondsToExpiry: 3600, .fipsEnabled: 0,
                .processCPUMicros: 250_000, .processResidentBytes: 8192, .processOpenFDs: 12,
            ])
        figures.brokerAgeMillis = 10
        return figures
    }

    private func lines(_ text: String) -> [Substring] { text.split(separator: "\n") }

    private let encryptOK =
        "rpc_system=\"grpc\",rpc_service=\"v2.KeyManagementService\",rpc_method=\"Encrypt\",rpc_grpc_status_code=\"0\""

    @Test func histogramBucketsAreCumulativeAndEndAtTheCount() {
        let text = MetricsPage.render(figures())
        let labels = encryptOK + ",rpc_response_status_code=\"OK\""
        let encrypt = lines(text).filter { $0.hasPrefix("rpc_server_call_duration_seconds_bucket{\(labels)") }
        #expect(encrypt.count == CallMetrics.secondsBucketMicros.count + 1)
        #expect(encrypt.first == "rpc_server_call_duration_seconds_bucket{\(labels),le=\"0.0001\"} 1")
        #expect(encrypt.contains("rpc_server_call_duration_seconds_bucket{\(labels),le=\"0.0025\"} 1"))
        #expect(encrypt.contains("rpc_server_call_duration_seconds_bucket{\(labels),le=\"0.005\"} 2"))
        #expect(encrypt.last == "rpc_server_call_duration_seconds_bucket{\(labels),le=\"+Inf\"} 2")
        #expect(text.contains("rpc_server_call_duration_seconds_sum{\(labels)} 0.00308\n"))
        #expect(
            text.contains(
                "rpc_server_call_duration_seconds_bucket{rpc_system=\"grpc\",rpc_service=\"v2.KeyManagementService\",rpc_method=\"Decrypt\",rpc_grpc_status_code=\"3\",rpc_response_status_code=\"INVALID_ARGUMENT\",le=\"10\"} 0\n"
            ))
        #expect(
            text.contains(
                "rpc_server_call_duration_seconds_count{rpc_system=\"grpc\",rpc_service=\"_OTHER\",rpc_method=\"_OTHER\",rpc_grpc_status_code=\"12\",rpc_response_status_code=\"UNIMPLEMENTED\"} 1\n"
            ))
    }

    /// HashiCorp's histogram: the same calls, in milliseconds, with the OpenTelemetry SDK's default
    /// bounds (0 ... 10000) and no status name label.
    @Test func hashicorpHistogramIsTheSameCallsInMilliseconds() {
        let text = MetricsPage.render(figures())
        let encrypt = lines(text).filter { $0.hasPrefix("rpc_server_duration_milliseconds_bucket{\(encryptOK),") }
        #expect(encrypt.count == CallMetrics.millisecondsBucketMicros.count + 1)
        #expect(encrypt.first == "rpc_server_duration_milliseconds_bucket{\(encryptOK),le=\"0\"} 0")
        #expect(encrypt.contains("rpc_server_duration_milliseconds_bucket{\(encryptOK),le=\"5\"} 2"))
        #expect(encrypt.contains("rpc_server_duration_milliseconds_bucket{\(encryptOK),le=\"7500\"} 2"))
        #expect(encrypt.last == "rpc_server_duration_milliseconds_bucket{\(encryptOK),le=\"+Inf\"} 2")
        #expect(text.contains("rpc_server_duration_milliseconds_sum{\(encryptOK)} 3.08\n"))
        #expect(text.contains("rpc_server_duration_milliseconds_count{\(encryptOK)} 2\n"))
        #expect(text.contains("# TYPE rpc_server_duration_milliseconds histogram\n"))
    }

    /// vso_client_operations_*: our seven operations folded into HashiCorp's four, buckets
    /// cumulative and bounded by the count.
    @Test func vsoFamiliesFoldOperationsIntoLoginRenewReadWrite() {
        var figures = figures()
        var values = figures.broker!.values
        values[.vaultDecryptTotal] = 5
        values[.vaultDecryptErrors] = 2
        values[.vaultDecryptMicros] = 40_000
        values[.vaultOtherTotal] = 1
        values[BrokerMetricID.vsoBucket(operation: 3, bucket: 0)!] = 6  // <= 5 ms
        values[BrokerMetricID.vsoBucket(operation: 3, bucket: 3)!] = 1  // <= 50 ms
        for bucket in 0..<VaultDurationBuckets.boundsMillis.count
        where values[BrokerMetricID.vsoBucket(operation: 0, bucket: bucket)!] == nil {
            values[BrokerMetricID.vsoBucket(operation: 0, bucket: bucket)!] = 0
        }
        figures.broker!.values = values
        let text = MetricsPage.render(figures)
        let write = "operation=\"write\",vault_connection=\"default\""
        #expect(text.contains("vso_client_operations_total{\(write)} 8\n"))
        #expect(text.contains("vso_client_operations_errors_total{\(write)} 2\n"))
        #expect(text.contains("vso_client_operations_total{operation=\"login\",vault_connection=\"default\"} 3\n"))
        #expect(text.contains("vso_client_operations_time_seconds_bucket{\(write),le=\"0.005\"} 6\n"))
        #expect(text.contains("vso_client_operations_time_seconds_bucket{\(write),le=\"0.025\"} 6\n"))
        #expect(text.contains("vso_client_operations_time_seconds_bucket{\(write),le=\"0.05\"} 7\n"))
        #expect(text.contains("vso_client_operations_time_seconds_bucket{\(write),le=\"+Inf\"} 8\n"))
        #expect(text.contains("vso_client_operations_time_seconds_sum{\(write)} 0.0425\n"))
    }

    /// The key_id hash slots become `sha256:<64 hex>` labels, active first.
    @Test func keyIDHashSlotsRenderAsApiserverStyleLabels() {
        var figures = figures()
        figures.broker!.values[BrokerMetricID.keyIDSlot(0, word: 0)!] = 4
        figures.broker!.values[BrokerMetricID.keyIDSlot(0, word: 1)!] = 0x0123_4567_89ab_cdef
        figures.broker!.values[BrokerMetricID.keyIDSlot(0, word: 4)!] = 0xff
        figures.broker!.values[BrokerMetricID.keyIDSlot(1, word: 0)!] = 3
        figures.broker!.values[BrokerMetricID.keyIDSlot(2, word: 0)!] = 0
        let text = MetricsPage.render(figures)
        #expect(
            text.contains(
                "vault_kube_kms_key_id_hash_info{key_id_hash=\"sha256:0123456789abcdef\(String(repeating: "0", count: 32))00000000000000ff\",key_version=\"4\",state=\"active\"} 1\n"
            ))
        #expect(
            text.contains(
                "vault_kube_kms_key_id_hash_info{key_id_hash=\"sha256:\(String(repeating: "0", count: 64))\",key_version=\"3\",state=\"known\"} 1\n"
            ))
        #expect(lines(text).filter { $0.hasPrefix("vault_kube_kms_key_id_hash_info{") }.count == 2)
    }

    @Test func requestAndErrorCountsArePerMethod() {
        let text = MetricsPage.render(figures())
        #expect(text.contains("vault_kube_kms_requests_total{method=\"Encrypt\"} 2\n"))
        #expect(text.contains("vault_kube_kms_requests_total{method=\"Status\"} 0\n"))
        #expect(text.contains("vault_kube_kms_request_errors_total{method=\"Decrypt\"} 1\n"))
        #expect(text.contains("vault_kube_kms_request_errors_total{method=\"unknown\"} 1\n"))
        #expect(text.contains("vault_kube_kms_request_errors_total{method=\"Encrypt\"} 0\n"))
    }

    @Test func brokerFiguresAppearWithBoundedLabels() {
        let text = MetricsPage.render(figures())
        #expect(text.contains("vault_kube_kms_login_total{outcome=\"success\"} 2\n"))
        #expect(text.contains("vault_kube_kms_login_total{outcome=\"failure\"} 1\n"))
        #expect(text.contains("vault_kube_kms_vault_requests_total{operation=\"encrypt\"} 2\n"))
        #expect(text.contains("vault_kube_kms_vault_request_duration_seconds_sum{operation=\"encrypt\"} 0.0025\n"))
        #expect(text.contains("vault_kube_kms_key_active_version 4\n"))
        #expect(text.contains("vault_kube_kms_key_id_info{key_id_hash=\"00000000000000ab\"} 1\n"))
        #expect(text.contains("vault_kube_kms_token_expiry_seconds 3600\n"))
        #expect(text.contains("vault_kube_kms_vault_edition_info{edition=\"enterprise\"} 1\n"))
        #expect(text.contains("vault_kube_kms_token_renewals_total{outcome=\"failure\"} 0\n"))
        #expect(text.contains("process_cpu_seconds_total{process=\"front\"} 1.5\n"))
        #expect(text.contains("process_cpu_seconds_total{process=\"broker\"} 0.25\n"))
        #expect(text.contains("process_open_fds{process=\"broker\"} 12\n"))
        #expect(text.contains("openssl_version=\"OpenSSL 3.0.15 3 Sep 2024\",fips=\"false\"} 1\n"))
    }

    @Test func withoutABrokerAnswerOnlyFrontFamiliesAreShown() {
        var figures = figures()
        figures.broker = nil
        let text = MetricsPage.render(figures)
        #expect(!text.contains("vault_kube_kms_vault_requests_total"))
        #expect(!text.contains("process=\"broker\""))
        #expect(text.contains("process_resident_memory_bytes{process=\"front\"} 4096\n"))
        #expect(text.contains("fips=\"unknown\""))
    }

    @Test func disablingRuntimeMetricsLeavesOutOnlyTheProcessFamilies() {
        var figures = figures()
        #expect(MetricsPage.render(figures).contains("process_cpu_seconds_total"))
        figures.runtimeMetrics = false
        let text = MetricsPage.render(figures)
        #expect(!text.contains("process_"))
        #expect(text.contains("vault_kube_kms_build_info"))
    }

    @Test func everyFamilyHasHelpAndTypeBeforeItsSamplesAndOnce() {
        let text = MetricsPage.render(figures())
        var declared: [String] = []
        var typed = Set<String>()
        for line in lines(text) {
            if line.hasPrefix("# HELP ") {
                declared.append(String(line.split(separator: " ")[2]))
            } else if line.hasPrefix("# TYPE ") {
                typed.insert(String(line.split(separator: " ")[2]))
            } else {
                let name = String(line.prefix { $0 != "{" && $0 != " " })
                let family = declared.last ?? ""
                #expect(name == family || name.hasPrefix(family + "_"), "\(name) outside its family \(family)")
            }
        }
        #expect(Set(declared).count == declared.count)
        #expect(Set(declared) == typed)
    }

    @Test func labelValuesAreEscaped() {
        var out = PrometheusText()
        out.sample("m", [("l", "a\"b\\c\nd")], 1)
        #expect(out.text == "m{l=\"a\\\"b\\\\c\\nd\"} 1\n")
    }

    @Test func secondsAreWrittenWithoutExponent() {
        #expect(PrometheusText.seconds(micros: 100) == "0.0001")
        #expect(PrometheusText.seconds(micros: 10_000_000) == "10")
        #expect(PrometheusText.seconds(micros: 2_500_000) == "2.5")
        #expect(PrometheusText.seconds(micros: 0) == "0")
    }
}

/// `--vault-address a,b,c`: one bounded `index` label per configured address, 1 on the one in use.
struct MetricsPageAddressTests {
    private func page(_ values: [BrokerMetricID: UInt64]) -> String {
        var figures = MetricsFigures(frontVersion: "0.1.0")
        figures.broker = MetricsAnswer(code: .ok, opensslVersion: "OpenSSL 3", values: values)
        return MetricsPage.render(figures)
    }

    @Test func theAddressInUseIsMarkedByIndexAndFailoversAreCounted() {
        let text = page([.vaultAddressCount: 3, .vaultAddressIndex: 1, .vaultAddressFailovers: 2])
        #expect(text.contains("vault_kube_kms_vault_address_in_use{index=\"0\"} 0\n"))
        #expect(text.contains("vault_kube_kms_vault_address_in_use{index=\"1\"} 1\n"))
        #expect(text.contains("vault_kube_kms_vault_address_in_use{index=\"2\"} 0\n"))
        #expect(!text.contains("index=\"3\""))
        #expect(text.contains("vault_kube_kms_vault_address_failovers_total 2\n"))
    }

    @Test func aBrokenCountNeverMakesMoreThanEightSeries() {
        let text = page([.vaultAddressCount: 1_000_000, .vaultAddressIndex: 0])
        let series = text.split(separator: "\n").filter { $0.hasPrefix("vault_kube_kms_vault_address_in_use{") }
        #expect(series.count == 8)
    }

    @Test func noAddressFiguresNoAddressFamily() {
        #expect(!page([.vaultLoginTotal: 1]).contains("vault_kube_kms_vault_address_in_use"))
    }
}
