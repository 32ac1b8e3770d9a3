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

    @Test func histogramBucketsAreCumulativeAndEndAtTheCount() {
        let text = MetricsPage.render(figures())
        let encrypt = lines(text).filter {
            $0.hasPrefix("rpc_server_call_duration_seconds_bucket{method=\"Encrypt\",grpc_code=\"OK\"")
        }
        #expect(encrypt.count == CallMetrics.bucketMicros.count + 1)
        #expect(
            encrypt.first
                == "rpc_server_call_duration_seconds_bucket{method=\"Encrypt\",grpc_code=\"OK\",le=\"0.0001\"} 1")
        #expect(
            encrypt.contains(
                "rpc_server_call_duration_seconds_bucket{method=\"Encrypt\",grpc_code=\"OK\",le=\"0.0025\"} 1"))
        #expect(
            encrypt.contains(
                "rpc_server_call_duration_seconds_bucket{method=\"Encrypt\",grpc_code=\"OK\",le=\"0.005\"} 2"))
        #expect(
            encrypt.last == "rpc_server_call_duration_seconds_bucket{method=\"Encrypt\",grpc_code=\"OK\",le=\"+Inf\"} 2"
        )
        #expect(text.contains("rpc_server_call_duration_seconds_sum{method=\"Encrypt\",grpc_code=\"OK\"} 0.00308\n"))
        #expect(
            text.contains(
                "rpc_server_call_duration_seconds_bucket{method=\"Decrypt\",grpc_code=\"INVALID_ARGUMENT\",le=\"10\"} 0\n"
            ))
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
