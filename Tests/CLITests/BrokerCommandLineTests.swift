import ArgumentParser
import Broker
import KMSRuntime
import Testing

@testable import vault_kube_kms

/// The broker's command line as the binary parses it: Go's flag spellings through
/// `GoStyleArguments` with the grammar of the declared options, then swift-argument-parser.
struct BrokerCommandLineTests {
    /// The arguments OpenShift's operator gives HashiCorp's image (openshift/library-go,
    /// pkg/operator/encryption/kms/pluginlifecycle/vault.go, BuildSidecarContainer), in its order.
    static let openShiftArguments = [
        "-listen-address=unix:///var/run/kmsplugin/kms-555.sock",
        "-vault-address=https://vault.example.com:8200",
        "-transit-mount=transit",
        "-transit-key=my-key",
        "-approle-role-id=dummy-role-id-555",
        "-approle-secret-id-path=/var/run/secrets/vault-kms/secret-id-555",
        "-vault-namespace=my-namespace",
        "-log-level=debug",
        "-tls-skip-verify=true",
        "-metrics-port=0",
    ]

    static func normalized(_ arguments: [String]) throws -> [String] {
        try GoStyleArguments.normalize(arguments, grammar: CommandGrammar(toolDescription: BrokerCommand._dumpHelp()))
    }

    static func serve(_ arguments: [String]) throws -> ServeCommand {
        let command = try BrokerCommand.parseAsRoot(normalized(arguments))
        return try #require(command as? ServeCommand)
    }

    /// Everything `serve` resolves from its flags, as one comparable text.
    static func settings(_ command: ServeCommand) throws -> String {
        let logging = try command.log.resolved()
        return [
            "\(try command.vault.configuration())", "listen=\(command.listenAddress ?? "-")",
            "level=\(logging.level)", "observability=\(try command.observability.frontArguments())",
            "sameUser=\(command.insecureSameUser)", "frontUser=\(command.frontUser ?? "-")",
        ].joined(separator: "\n")
    }

    @Test func openShiftsArgumentListParsesToTheConfigurationItMeans() throws {
        let command = try Self.serve(Self.openShiftArguments)
        let configuration = try command.vault.configuration()
        #expect(command.listenAddress == "unix:///var/run/kmsplugin/kms-555.sock")
        #expect(configuration.vaultAddress == "https://vault.example.com:8200")
        #expect(configuration.vaultKeyPath == "transit/keys/my-key")
        #expect(configuration.roleID == "dummy-role-id-555")
        #expect(configuration.secretIDPath == "/var/run/secrets/vault-kms/secret-id-555")
        #expect(configuration.vaultNamespace == "my-namespace")
        #expect(configuration.tlsSkipVerify)
        #expect(configuration.warnings.filter { $0.contains("deprecated") }.isEmpty)
        #expect(try command.log.resolved().level == .debug)
        #expect(try command.observability.frontArguments() == ["--metrics-port=0"])
    }

    @Test func withoutTransitMountTheMountIsHashiCorpsDefault() throws {
        // OpenShift leaves -transit-mount out when the mount is empty.
        let arguments = Self.openShiftArguments.filter { !$0.hasPrefix("-transit-mount") }
        #expect(try Self.serve(arguments).vault.configuration().vaultKeyPath == "transit/keys/my-key")
    }

    static let conventional = [
        "--listen-address", "/run/k/kms.sock", "--vault-address", "https://v:8200", "--vault-key-path",
        "transit/keys/k", "--approle-role-id", "r", "--approle-secret-id-path", "/s", "--tls-skip-verify",
        "--metrics-port", "-1", "--log-level", "info",
    ]

    /// One table row per Go spelling of the same command line.
    static let spellings: [[String]] = [
        conventional,
        [
            "-listen-address=/run/k/kms.sock", "-vault-address=https://v:8200", "-vault-key-path=transit/keys/k",
            "-approle-role-id=r", "-approle-secret-id-path=/s", "-tls-skip-verify", "-metrics-port=-1",
            "-log-level=info",
        ],
        [
            "-listen-address", "/run/k/kms.sock", "-vault-address", "https://v:8200", "-vault-key-path",
            "transit/keys/k", "-approle-role-id", "r", "-approle-secret-id-path", "/s", "-tls-skip-verify=true",
            "-metrics-port", "-1", "-log-level", "info",
        ],
        [
            "--listen-address=/run/k/kms.sock", "--vault-address=https://v:8200", "--vault-key-path=transit/keys/k",
            "--approle-role-id=r", "--approle-secret-id-path=/s", "--tls-skip-verify=1", "--metrics-port=-1",
            "--log-level=info",
        ],
        [
            "serve", "-transit-key", "k", "-listen-address", "/run/k/kms.sock", "--vault-address", "https://v:8200",
            "-approle-role-id=r", "--approle-secret-id-path", "/s", "--tls-skip-verify=True", "-metrics-port=-1",
            "-zap-log-level=info",
        ],
    ]

    @Test(arguments: spellings)
    func everySpellingParsesToTheSameConfiguration(_ spelling: [String]) throws {
        let expected = try Self.settings(Self.serve(Self.conventional))
        #expect(try Self.settings(Self.serve(spelling)) == expected)
    }

    @Test func falseBooleansLeaveTheFlagOff() throws {
        let base = Self.openShiftArguments.filter { !$0.hasPrefix("-tls-skip-verify") }
        for spelling in ["-tls-skip-verify=false", "--tls-skip-verify=false", "-tls-skip-verify=0"] {
            #expect(try Self.serve(base + [spelling]).vault.configuration().tlsSkipVerify == false)
        }
        #expect(throws: ConfigurationError.self) { try Self.normalized(base + ["-tls-skip-verify=yes please"]) }
    }

    @Test func authMethodApproleIsAcceptedAndAnyOtherRefusedClearly() throws {
        #expect(
            try Self.serve(Self.openShiftArguments + ["--auth-method", "approle"]).vault.configuration().roleID
                == "dummy-role-id-555")
        #expect {
            try Self.serve(Self.openShiftArguments + ["-auth-method=kubernetes"]).vault.configuration()
        } throws: { error in
            "\(error)".contains(#"--auth-method "kubernetes" is not supported"#)
        }
    }

    @Test(arguments: [
        ("debug", "debug"), ("info", "info"), ("error", "error"), ("panic", "critical"), ("1", "debug"),
        ("4", "trace"), ("5", "trace"), ("6", "trace"),
    ])
    func zapLogLevelsMapToTheMatchingLevel(_ zap: String, _ expected: String) throws {
        let base = Self.openShiftArguments.filter { !$0.hasPrefix("-log-level") }
        #expect(try "\(Self.serve(base + ["-zap-log-level=\(zap)"]).log.resolved().level)" == expected)
    }

    @Test func badZapLevelsAndTwoLevelFlagsAreRefused() throws {
        let base = Self.openShiftArguments.filter { !$0.hasPrefix("-log-level") }
        for bad in ["0", "-1", "verbose", "200"] {
            #expect(throws: (any Error).self) { try Self.serve(base + ["--zap-log-level", bad]).log.resolved() }
        }
        #expect(throws: (any Error).self) {
            try Self.serve(Self.openShiftArguments + ["--zap-log-level", "info"]).log.resolved()
        }
    }

    @Test func healthFlagsReachTheFrontAsSingleWords() throws {
        let command = try Self.serve(
            Self.openShiftArguments + [
                "-health-port", "-5", "-health-address=0.0.0.0", "-health-mode=hashicorp", "-disable-runtime-metrics",
            ])
        #expect(
            try command.observability.frontArguments() == [
                "--health-port=-5", "--health-address=0.0.0.0", "--health-mode=hashicorp", "--metrics-port=0",
                "--disable-runtime-metrics",
            ])
        #expect(throws: ConfigurationError.self) {
            try Self.serve(Self.openShiftArguments + ["-health-address=localhost"]).observability.frontArguments()
        }
    }

    @Test func everySubcommandAcceptsGoSpellings() throws {
        let probe = try BrokerCommand.parseAsRoot(Self.normalized(["probe", "-listen-address=/run/k/kms.sock"]))
        #expect((probe as? ProbeCommand)?.listenAddress == "/run/k/kms.sock")
        let broker = try BrokerCommand.parseAsRoot(
            Self.normalized(["broker", "-allowed-front-uid", "65534", "-broker-listen-address=/run/b.sock"]))
        #expect((broker as? BrokerSplitCommand)?.allowedFrontUid == 65534)
        let preflight = try BrokerCommand.parseAsRoot(Self.normalized(["preflight", "-tls-skip-verify=true"]))
        #expect((preflight as? PreflightCommand)?.vault.tlsSkipVerify == true)
    }
}
