import KMSRuntime
import Testing

@testable import Front

struct FrontConfigurationTests {
    static func configuration(
        brokerFD: String? = nil, brokerAddress: String? = nil, listenFD: String? = nil, listenAddress: String? = nil,
        logLevel: String? = nil, logFormat: String? = nil, environment: [String: String] = [:]
    ) throws(ConfigurationError) -> FrontConfiguration {
        try FrontConfiguration(
            brokerFD: brokerFD, brokerAddress: brokerAddress, listenFD: listenFD, listenAddress: listenAddress,
            logLevel: logLevel, logFormat: logFormat, environment: { environment[$0] })
    }

    @Test("the spawn topology's flags resolve to inherited descriptors with default logging")
    func spawnFlags() throws {
        let configuration = try Self.configuration(brokerFD: "3", listenFD: "4")
        #expect(configuration == FrontConfiguration(broker: .inheritedFD(3), listen: .inheritedFD(4)))
        #expect(configuration.logLevel == .info)
        #expect(configuration.logFormat == .json)
    }

    @Test("addresses resolve to unix socket paths")
    func addresses() throws {
        let configuration = try Self.configuration(
            brokerAddress: "unix:///run/kms/broker.sock", listenAddress: "unix:///run/kms/kms.sock", logLevel: "debug",
            logFormat: "text")
        #expect(configuration.broker == .address(.path("/run/kms/broker.sock")))
        #expect(configuration.listen == .address(.path("/run/kms/kms.sock")))
        #expect(configuration.logLevel == .debug)
        #expect(configuration.logFormat == .text)
    }

    @Test("every flag falls back to its VAULT_KUBE_KMS_ environment variable")
    func environmentFallback() throws {
        let configuration = try Self.configuration(environment: [
            "VAULT_KUBE_KMS_BROKER_FD": "5", "VAULT_KUBE_KMS_LISTEN_ADDRESS": "unix:///tmp/k.sock",
            "VAULT_KUBE_KMS_LOG_LEVEL": "warning", "VAULT_KUBE_KMS_LOG_FORMAT": "text",
        ])
        #expect(configuration.broker == .inheritedFD(5))
        #expect(configuration.listen == .address(.path("/tmp/k.sock")))
        #expect(configuration.logLevel == .warning)
        #expect(configuration.logFormat == .text)
    }

    @Test("a flag of an either-or pair hides the environment for the whole pair")
    func flagsWinPerPair() throws {
        let configuration = try Self.configuration(
            brokerFD: "3", listenFD: "4", logLevel: "error",
            environment: [
                "VAULT_KUBE_KMS_LISTEN_ADDRESS": "unix:///var/run/kmsplugin/kms.sock",
                "VAULT_KUBE_KMS_BROKER_ADDRESS": "unix:///b.sock", "VAULT_KUBE_KMS_LOG_LEVEL": "trace",
            ])
        #expect(configuration.listen == .inheritedFD(4))
        #expect(configuration.broker == .inheritedFD(3))
        #expect(configuration.logLevel == .error)
    }

    @Test("both or neither of an either-or pair is refused")
    func pairsAreExclusive() {
        #expect(throws: ConfigurationError.self) {
            try Self.configuration(brokerFD: "3", brokerAddress: "unix:///b", listenFD: "4")
        }
        #expect(throws: ConfigurationError.self) {
            try Self.configuration(brokerFD: "3", listenFD: "4", listenAddress: "unix:///l")
        }
        #expect(throws: ConfigurationError.self) { try Self.configuration(listenFD: "4") }
        #expect(throws: ConfigurationError.self) { try Self.configuration(brokerFD: "3") }
        #expect(throws: ConfigurationError.self) { try Self.configuration(brokerFD: "3", listenFD: "3") }
    }

    @Test(
        "descriptor numbers must be plain decimals of at least 3",
        arguments: ["0", "2", "-3", "+3", "3a", "", " 3", "99999999999", "0x3"])
    func badDescriptors(text: String) {
        #expect(throws: ConfigurationError.self) { try Self.configuration(brokerFD: text, listenFD: "4") }
    }

    @Test("unknown log levels, formats and non-unix addresses are refused")
    func badValues() {
        #expect(throws: ConfigurationError.self) {
            try Self.configuration(brokerFD: "3", listenFD: "4", logLevel: "verbose")
        }
        #expect(throws: ConfigurationError.self) {
            try Self.configuration(brokerFD: "3", listenFD: "4", logFormat: "xml")
        }
        #expect(throws: ConfigurationError.self) {
            try Self.configuration(brokerFD: "3", listenAddress: "tcp://127.0.0.1:1")
        }
    }
}
