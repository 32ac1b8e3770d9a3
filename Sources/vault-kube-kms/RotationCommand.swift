import ArgumentParser
import KMSCore
import KMSProbe
import KMSRuntime

#if canImport(Glibc)
    import Glibc
#endif

/// `vault-kube-kms rotation status`: compares the key_id hashes on our /metrics with what every
/// kube-apiserver's Status calls last returned (docs/operations.md, "Rotation convergence").
struct RotationCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rotation", abstract: "Key rotation across kube-apiservers.",
        subcommands: [RotationStatusCommand.self])
}

struct RotationStatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Say whether every kube-apiserver uses the plugin's active key_id: converged, pending or stuck.",
        discussion: """
            Exit status: 0 converged, 1 pending, 2 stuck, 3 could not decide (a page unreadable or \
            without the needed metrics). Pages are http(s) URLs or files ("-" is standard input).
            """)

    @Option(
        name: .customLong("plugin-metrics"),
        help: "The plugin's metrics page (URL or file; repeat for every node; default http://127.0.0.1:9090/metrics).")
    var pluginMetrics: [String] = []

    @Option(
        name: .customLong("apiserver-metrics"),
        help: "A kube-apiserver metrics page (URL or file, e.g. saved by kubectl get --raw /metrics); repeatable.")
    var apiserverMetrics: [String] = []

    @Option(help: "The KMS provider's name in the EncryptionConfiguration (needed when a page shows several).")
    var providerName: String?

    @Option(help: "Pending longer than this is stuck (default 5m; kube-apiserver calls Status every minute).")
    var stuckAfter: String = "5m"

    @Option(help: "Bearer token file for apiserver URLs (read, sent as a header, never printed).")
    var bearerTokenFile: String?

    @Option(help: "CA certificate file for https pages.")
    var caFile: String?

    @Option(help: "Timeout of each page fetch in milliseconds.")
    var timeoutMillis: Int = 5000

    func run() throws {
        guard !apiserverMetrics.isEmpty else { throw ValidationError("--apiserver-metrics is required") }
        guard let stuckMillis = try? DurationText.millis(stuckAfter, flag: "stuck-after") else {
            throw ValidationError("--stuck-after must be a duration such as 90s or 5m")
        }
        guard (1...60_000).contains(timeoutMillis) else { throw ValidationError("--timeout-millis must be 1-60000") }
        do {
            var token: String?
            if let bearerTokenFile {
                token = try Self.readFile(bearerTokenFile).split(whereSeparator: \.isNewline).first.map(String.init)
            }
            let plugins = try (pluginMetrics.isEmpty ? ["http://127.0.0.1:9090/metrics"] : pluginMetrics).map {
                source in
                try RotationConvergence.pluginKeys(
                    PrometheusSamples.parse(
                        load(source, token: nil),
                        names: [RotationConvergence.hashFamily, RotationConvergence.sinceFamily]),
                    source: source)
            }
            var apiservers: [RotationConvergence.Apiserver] = []
            for source in apiserverMetrics {
                let samples = try PrometheusSamples.parse(
                    load(source, token: token), names: [RotationConvergence.statusFamily])
                apiservers += try RotationConvergence.apiservers(samples, source: source, provider: providerName)
            }
            let report = RotationConvergence.decide(
                plugins: plugins, apiservers: apiservers, now: Double(time(nil)), stuckAfter: Double(stuckMillis) / 1000
            )
            for line in report.lines { print(line) }
            if report.verdict != .converged { throw ExitCode(report.verdict.exitCode) }
        } catch let error as ExitCode {
            throw error
        } catch {
            print("undecided: \(error)")
            throw ExitCode(3)
        }
    }

    private func load(_ source: String, token: String?) throws -> String {
        if source.hasPrefix("http://"), token != nil {
            throw ReadError(description: "\(source.prefix(64)): refusing to send the bearer token over plain http")
        }
        if source.hasPrefix("http://") || source.hasPrefix("https://") {
            return try MetricsPageFetch.get(
                url: source, bearerToken: token, caFile: caFile, timeoutMillis: timeoutMillis)
        }
        return try Self.readFile(source)
    }

    struct ReadError: Error, CustomStringConvertible {
        var description: String
    }

    /// A whole file, or standard input for "-"; at most `MetricsPageFetch.maxBytes`.
    static func readFile(_ path: String) throws -> String {
        let fd = path == "-" ? 0 : open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ReadError(description: "\(path): \(String(cString: strerror(errno)))") }
        defer { if fd != 0 { close(fd) } }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw ReadError(description: "\(path): \(String(cString: strerror(errno)))")
            }
            if count == 0 { break }
            bytes += chunk[0..<count]
            guard bytes.count <= MetricsPageFetch.maxBytes else {
                throw ReadError(description: "\(path): larger than 64 MiB")
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
