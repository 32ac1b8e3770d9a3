import KMSRuntime
import Testing

@testable import Front

#if canImport(Glibc)
    import Glibc
#endif

/// Issue 13 finding 2: who the front accepts as its broker (SO_PEERCRED before HELLO), and the
/// refusal of abstract broker names without the development flag.
struct BrokerPeerPolicyTests {
    static func configuration(_ brokerAddress: String) throws(ConfigurationError) -> FrontConfiguration {
        try FrontConfiguration(
            brokerFD: nil, brokerAddress: brokerAddress, listenFD: nil, listenAddress: "unix:///run/kms.sock",
            logLevel: nil, logFormat: nil, environment: { _ in nil }, defaultLogFormat: { .json })
    }

    @Test func onlyTheExpectedUIDOrRootIsAccepted() {
        let policy = BrokerPeerPolicy()
        #expect(policy.refusal(peerUID: 998, peerGID: 998, expectedUID: 998) == nil)
        #expect(policy.refusal(peerUID: 0, peerGID: 0, expectedUID: 998) == nil)
        #expect(policy.refusal(peerUID: 65534, peerGID: 65534, expectedUID: 998)?.contains("uid 65534") == true)
    }

    @Test func aConfiguredGIDMustMatchToo() {
        let policy = BrokerPeerPolicy(uid: 998, gid: 997)
        #expect(policy.refusal(peerUID: 998, peerGID: 997, expectedUID: 998) == nil)
        #expect(policy.refusal(peerUID: 998, peerGID: 65534, expectedUID: 998)?.contains("gid 65534") == true)
    }

    @Test func theDefaultExpectedUIDIsTheOwnerOfTheSocketPath() throws {
        var template = Array("/tmp/front-peer-XXXXXX".utf8CString)
        let directory = try #require(template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) })
        let path = String(cString: directory) + "/broker.sock"
        defer { _ = system("rm -rf '\(String(cString: directory))'") }
        close(open(path, O_CREAT | O_WRONLY, 0o600))
        chown(path, 4321, 4321)
        #expect(try BrokerPeerPolicy().expectedUID(for: .path(path)).get() == 4321)
        #expect(try BrokerPeerPolicy(uid: 77).expectedUID(for: .path(path)).get() == 77)
        #expect(throws: ConfigurationError.self) { try BrokerPeerPolicy().expectedUID(for: .abstract("b")).get() }
    }

    @Test func abstractBrokerNamesAreRefusedWithoutTheDevelopmentFlag() throws {
        var configuration = try Self.configuration("unix:///@vkk-broker")
        #expect(throws: ConfigurationError.self) {
            try configuration.applyBrokerPeer(
                brokerUID: "0", brokerGID: nil, insecureAbstractBrokerAddress: false, environment: { _ in nil })
        }
        // With the flag, the broker's uid must be named: there is no socket file to own.
        #expect(throws: ConfigurationError.self) {
            try configuration.applyBrokerPeer(
                brokerUID: nil, brokerGID: nil, insecureAbstractBrokerAddress: true, environment: { _ in nil })
        }
        try configuration.applyBrokerPeer(
            brokerUID: "0", brokerGID: nil, insecureAbstractBrokerAddress: true, environment: { _ in nil })
        #expect(configuration.brokerPeer == BrokerPeerPolicy(uid: 0))
        let environment = [
            "VAULT_KUBE_KMS_INSECURE_ABSTRACT_BROKER_ADDRESS": "true", "VAULT_KUBE_KMS_BROKER_UID": "12",
        ]
        try configuration.applyBrokerPeer(
            brokerUID: nil, brokerGID: nil, insecureAbstractBrokerAddress: false, environment: { environment[$0] })
        #expect(configuration.brokerPeer.uid == 12)
    }

    @Test func brokerUIDAndGIDMustBeNumbers() throws {
        var configuration = try Self.configuration("unix:///run/vkk/broker.sock")
        for bad in ["", "root", "-1", "4294967295", "1 2"] {
            #expect(throws: ConfigurationError.self) {
                try configuration.applyBrokerPeer(
                    brokerUID: bad, brokerGID: nil, insecureAbstractBrokerAddress: false, environment: { _ in nil })
            }
        }
        try configuration.applyBrokerPeer(
            brokerUID: "998", brokerGID: "997", insecureAbstractBrokerAddress: false, environment: { _ in nil })
        #expect(configuration.brokerPeer == BrokerPeerPolicy(uid: 998, gid: 997))
    }
}
