import ArgumentParser
import Front
import KMSRuntime
import Testing

@testable import vault_kube_kms_front

/// The front's command line as the binary parses it (split topology: an operator writes it).
struct FrontCommandLineTests {
    static func configuration(_ arguments: [String]) throws -> FrontConfiguration {
        let grammar = try CommandGrammar(toolDescription: FrontCommand._dumpHelp())
        let command = try FrontCommand.parse(GoStyleArguments.normalize(arguments, grammar: grammar))
        return try command.configuration()
    }

    static let spellings: [[String]] = [
        [
            "--broker-address", "/run/b.sock", "--listen-address", "/run/k.sock", "--health-port", "-1",
            "--metrics-port", "0", "--disable-runtime-metrics", "--log-level", "debug",
        ],
        [
            "-broker-address=/run/b.sock", "-listen-address=/run/k.sock", "-health-port=-1", "-metrics-port=0",
            "-disable-runtime-metrics=true", "-log-level=debug",
        ],
        [
            "-broker-address", "unix:///run/b.sock", "-listen-address", "unix:///run/k.sock", "-health-port", "-1",
            "--metrics-port=0", "--disable-runtime-metrics", "--log-level=1",
        ],
    ]

    @Test(arguments: spellings)
    func everySpellingParsesToTheSameConfiguration(_ spelling: [String]) throws {
        let configuration = try Self.configuration(spelling)
        var expected = FrontConfiguration(
            broker: .address(.path("/run/b.sock")), listen: .address(.path("/run/k.sock")), logLevel: .debug,
            logFormat: configuration.logFormat)
        expected.healthPort = 0
        expected.metricsPort = 0
        expected.runtimeMetrics = false
        #expect(configuration == expected)
    }

    @Test func healthAddressAndModeAreParsedAndBadOnesRefused() throws {
        let base = ["-broker-address=/run/b.sock", "-listen-address=/run/k.sock"]
        let wide = try Self.configuration(base + ["-health-address=0.0.0.0", "-health-mode=hashicorp"])
        #expect(wide.healthAddress == .ipv4(0) && wide.healthAddress.isWildcard)
        #expect(wide.healthMode == .hashicorp)
        let loopback = try Self.configuration(base)
        #expect(loopback.healthAddress == .loopback && loopback.healthMode == .deep)
        #expect(try Self.configuration(base + ["--health-address", "::1"]).healthAddress.description == "[::1]")
        #expect(throws: ConfigurationError.self) { try Self.configuration(base + ["-health-address=node1"]) }
        #expect(throws: ConfigurationError.self) { try Self.configuration(base + ["-health-mode=shallow"]) }
        #expect(throws: ConfigurationError.self) { try Self.configuration(base + ["-health-port=70000"]) }
        #expect(throws: ConfigurationError.self) { try Self.configuration(base + ["-health-port=-x"]) }
    }
}
