import KMSRuntime
import KMSv2API
import Testing

@testable import Front

/// The front's split-topology settings and reconnect pieces.
struct FrontSplitTests {
    static func configuration(
        brokerAddress: String? = "unix:///run/vkk/broker.sock", listenAddress: String? = nil,
        socketMode: String? = nil, socketGroup: String? = nil, environment: [String: String] = [:],
        defaultLogFormat: LogFormat = .json
    ) throws(ConfigurationError) -> FrontConfiguration {
        try FrontConfiguration(
            brokerFD: nil, brokerAddress: brokerAddress, listenFD: nil, listenAddress: listenAddress, logLevel: nil,
            logFormat: nil, socketMode: socketMode, socketGroup: socketGroup, environment: { environment[$0] },
            defaultLogFormat: { defaultLogFormat })
    }

    @Test func withoutListenFlagsButWithListenFDsTheFrontServesTheActivatedSocket() throws {
        let configuration = try Self.configuration(environment: ["LISTEN_FDS": "1"])
        #expect(configuration.listen == .socketActivated)
        #expect(throws: ConfigurationError.self) { try Self.configuration() }
    }

    @Test func aListenFlagWinsOverSocketActivation() throws {
        let configuration = try Self.configuration(
            listenAddress: "unix:///@kms", environment: ["LISTEN_FDS": "1"])
        #expect(configuration.listen == .address(.abstract("kms")))
    }

    @Test func socketModeAndGroupComeFromFlagsOrEnvironment() throws {
        let defaults = try Self.configuration(listenAddress: "unix:///run/kms.sock")
        #expect(defaults.socketMode == 0o660)
        #expect(defaults.socketGroup == nil)
        let flags = try Self.configuration(listenAddress: "unix:///run/kms.sock", socketMode: "0600", socketGroup: "0")
        #expect(flags.socketMode == 0o600)
        #expect(flags.socketGroup == 0)
        let environment = try Self.configuration(
            listenAddress: "unix:///run/kms.sock",
            environment: ["VAULT_KUBE_KMS_SOCKET_MODE": "0640", "VAULT_KUBE_KMS_SOCKET_GROUP": "65534"])
        #expect(environment.socketMode == 0o640)
        #expect(environment.socketGroup == 65534)
        #expect(throws: ConfigurationError.self) {
            try Self.configuration(listenAddress: "unix:///run/kms.sock", socketMode: "0666")
        }
    }

    @Test func theLogFormatDefaultsToJournaldWhenStderrIsTheJournal() throws {
        let journal = try Self.configuration(listenAddress: "unix:///run/kms.sock", defaultLogFormat: .journald)
        #expect(journal.logFormat == .journald)
        let explicit = try FrontConfiguration(
            brokerFD: nil, brokerAddress: "unix:///b", listenFD: nil, listenAddress: "unix:///k", logLevel: nil,
            logFormat: "json", environment: { _ in nil }, defaultLogFormat: { .journald })
        #expect(explicit.logFormat == .json)
    }

    @Test func reconnectBackoffDoublesWithJitterUpToTheCap() {
        for _ in 0..<100 {
            let next = FrontServer.nextDelay(after: 100)
            #expect(next > 100 && next <= 200)
            let capped = FrontServer.nextDelay(after: FrontServer.maxReconnectMillis)
            #expect(capped <= FrontServer.maxReconnectMillis && capped >= FrontServer.maxReconnectMillis * 4 / 5)
        }
    }

    @Test func statusWhileTheBrokerIsAwayIsANonOkHealthz() throws {
        guard case .success(let bytes) = KMSService.brokerAwayStatus() else {
            Issue.record("no response")
            return
        }
        let response = try V2_StatusResponse(serializedBytes: bytes)
        #expect(response.healthz == "broker unavailable")
        #expect(response.version == "v2")
        #expect(response.keyID.isEmpty)
    }
}
