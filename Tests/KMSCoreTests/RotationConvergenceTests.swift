import KMSCore
import Testing

/// `rotation status`'s reading of Prometheus text and its verdicts, on hand-made pages.
struct RotationConvergenceTests {
    let active = "sha256:" + String(repeating: "a", count: 64)
    let older = "sha256:" + String(repeating: "b", count: 64)
    let foreign = "sha256:" + String(repeating: "c", count: 64)

    func plugin(since: Double = 1000) -> RotationConvergence.PluginKeys {
        RotationConvergence.PluginKeys(
            activeHash: active, activeVersion: 3, versions: [active: 3, older: 2], activeSince: since)
    }

    @Test func samplesParseLabelsEscapesValuesAndSkipComments() throws {
        let text = """
            # HELP x a "quoted" help
            # TYPE x gauge
            x{a="1",b="q\\"uote\\\\d\\nl"} 1.5e+09
            y 7 1700000000000

            z{} +Inf
            """
        let samples = try PrometheusSamples.parse(text)
        #expect(samples.count == 3)
        #expect(samples[0] == PrometheusSample(name: "x", labels: ["a": "1", "b": "q\"uote\\d\nl"], value: 1.5e9))
        #expect(samples[1] == PrometheusSample(name: "y", labels: [:], value: 7))
        #expect(samples[2].value == .infinity)
        #expect(try PrometheusSamples.parse(text, names: ["y"]).map(\.name) == ["y"])
    }

    @Test func malformedLinesAreErrorsNamingTheLine() {
        #expect(throws: PrometheusTextError(line: 2, reason: "bad sample value")) {
            try PrometheusSamples.parse("a 1\nb{c=\"d\"} nope\n")
        }
        #expect(throws: PrometheusTextError(line: 1, reason: "unterminated label value")) {
            try PrometheusSamples.parse("a{b=\"c} 1")
        }
    }

    @Test func theNewestStatusHashOfEachApiserverCounts() throws {
        let page = """
            \(RotationConvergence.statusFamily){apiserver_id_hash="s1",key_id_hash="\(older)",provider_name="kms"} 100
            \(RotationConvergence.statusFamily){apiserver_id_hash="s1",key_id_hash="\(active)",provider_name="kms"} 200
            \(RotationConvergence.statusFamily){apiserver_id_hash="s2",key_id_hash="\(older)",provider_name="kms"} 150
            \(RotationConvergence.statusFamily){apiserver_id_hash="s2",key_id_hash="\(foreign)",provider_name="other"} 300
            """
        let samples = try PrometheusSamples.parse(page)
        let found = try RotationConvergence.apiservers(samples, source: "page", provider: "kms")
        #expect(found.map(\.name) == ["s1", "s2"])
        #expect(found.map(\.hash) == [active, older])
        #expect(throws: RotationConvergence.Failure.self) {
            try RotationConvergence.apiservers(samples, source: "page", provider: nil)
        }
    }

    @Test func verdictsConvergedPendingStuck() {
        let onActive = RotationConvergence.Apiserver(name: "s1", hash: active, lastStatus: 1100)
        let onOlder = RotationConvergence.Apiserver(name: "s2", hash: older, lastStatus: 900)
        let onForeign = RotationConvergence.Apiserver(name: "s3", hash: foreign, lastStatus: 1100)
        let converged = RotationConvergence.decide(
            plugins: [plugin()], apiservers: [onActive], now: 1200, stuckAfter: 300)
        #expect(converged.verdict == .converged)
        let pending = RotationConvergence.decide(
            plugins: [plugin()], apiservers: [onActive, onOlder], now: 1200, stuckAfter: 300)
        #expect(pending.verdict == .pending)
        #expect(
            pending.lines.count == 2 && pending.lines[1].contains("apiserver s2")
                && pending.lines[1].contains("version 2"))
        let late = RotationConvergence.decide(
            plugins: [plugin()], apiservers: [onActive, onOlder], now: 1400, stuckAfter: 300)
        #expect(late.verdict == .stuck)
        let unknown = RotationConvergence.decide(
            plugins: [plugin()], apiservers: [onActive, onForeign], now: 1200, stuckAfter: 300)
        #expect(unknown.verdict == .stuck && unknown.lines[1].contains("does not know"))
        #expect([converged, pending, late].map(\.verdict.exitCode) == [0, 1, 2])
    }

    @Test func pluginsThatDisagreeArePendingThenStuck() {
        var other = plugin()
        other.activeHash = older
        other.activeVersion = 2
        let apiserver = RotationConvergence.Apiserver(name: "s1", hash: active, lastStatus: 1100)
        #expect(
            RotationConvergence.decide(plugins: [plugin(), other], apiservers: [apiserver], now: 1100, stuckAfter: 300)
                .verdict == .pending)
        #expect(
            RotationConvergence.decide(plugins: [plugin(), other], apiservers: [apiserver], now: 2000, stuckAfter: 300)
                .verdict == .stuck)
    }

    @Test func pluginKeysComeFromOurPage() throws {
        let page = """
            vault_kube_kms_key_id_hash_info{key_id_hash="\(active)",key_version="3",state="active"} 1
            vault_kube_kms_key_id_hash_info{key_id_hash="\(older)",key_version="2",state="known"} 1
            vault_kube_kms_key_active_since_timestamp_seconds 1700000000
            """
        let keys = try RotationConvergence.pluginKeys(PrometheusSamples.parse(page), source: "ours")
        #expect(
            keys
                == RotationConvergence.PluginKeys(
                    activeHash: active, activeVersion: 3, versions: [active: 3, older: 2], activeSince: 1_700_000_000))
        #expect(throws: RotationConvergence.Failure.self) {
            try RotationConvergence.pluginKeys(PrometheusSamples.parse("up 1"), source: "x")
        }
    }
}
