import KMSRuntime
import Testing

@testable import Broker
@testable import Preflight
@testable import VaultClient

struct PreflightSandboxTests {
    @Test func theSupportedABIPassesAndNamesTheKernel() {
        let result = PreflightSandbox.landlock(kernelABI: 7, supported: 7, kernel: "6.18.1")
        #expect(result.outcome == .pass)
        #expect(result.detail.contains("kernel 6.18.1 offers Landlock ABI 7"))
    }

    @Test func anOlderABIWarnsWithWhatIsMissing() {
        let five = PreflightSandbox.landlock(kernelABI: 5, supported: 7, kernel: "6.10.0")
        #expect(five.outcome == .warn)
        #expect(five.detail.contains("kernel 6.10.0 offers Landlock ABI 5, the front supports ABI 7"))
        #expect(five.detail.contains("--one-uid refuses to start"))
        #expect(!five.detail.contains("TCP"))
        let three = PreflightSandbox.landlock(kernelABI: 3, supported: 7, kernel: "6.2.0")
        #expect(three.detail.contains("no TCP bind/connect rules"))
        let six = PreflightSandbox.landlock(kernelABI: 6, supported: 7, kernel: "6.12.0")
        #expect(six.outcome == .warn && !six.detail.contains("--one-uid"))
    }

    @Test func noLandlockWarns() {
        let none = PreflightSandbox.landlock(kernelABI: -1, supported: 7, kernel: "5.10.0")
        #expect(none.outcome == .warn)
        #expect(none.detail.contains("offers no Landlock") && none.detail.contains("no filesystem rules"))
    }

    @Test func seccompWarnsOnlyWithoutKernelOrArchitectureSupport() {
        #expect(PreflightSandbox.seccomp(architectureSupported: true, mode: 0).outcome == .pass)
        #expect(PreflightSandbox.seccomp(architectureSupported: true, mode: 2).outcome == .pass)
        #expect(PreflightSandbox.seccomp(architectureSupported: true, mode: -1).outcome == .warn)
        #expect(PreflightSandbox.seccomp(architectureSupported: false, mode: 0).outcome == .warn)
    }
}

struct OneUIDPlanTests {
    private let nobody = FrontUser(uid: 65534, gid: 65534, name: "nobody")

    @Test func oneUIDRunsTheFrontAtTheBrokersOwnUid() throws {
        #expect(
            try FrontPrivilegePlan.decide(user: nil, brokerEUID: 1000, insecureSameUser: false, oneUID: true)
                == .oneUID(1000))
        let same = FrontUser(uid: 1000, gid: 1000, name: "me")
        #expect(
            try FrontPrivilegePlan.decide(user: same, brokerEUID: 1000, insecureSameUser: false, oneUID: true)
                == .oneUID(1000))
    }

    @Test func oneUIDIsRefusedAsRootWithAnotherFrontUserAndWithInsecureSameUser() {
        #expect(throws: ConfigurationError.self) {
            try FrontPrivilegePlan.decide(user: nil, brokerEUID: 0, insecureSameUser: false, oneUID: true)
        }
        #expect(throws: ConfigurationError.self) {
            try FrontPrivilegePlan.decide(user: nobody, brokerEUID: 1000, insecureSameUser: false, oneUID: true)
        }
        #expect(throws: ConfigurationError.self) {
            try FrontPrivilegePlan.decide(user: nil, brokerEUID: 1000, insecureSameUser: true, oneUID: true)
        }
    }

    /// Issue 14 item 3: OpenShift's non-root sidecar passes no --one-uid and no --front-user.
    @Test func aNonRootBrokerWithoutFrontUserTakesTheOneUIDTopologyByItself() throws {
        #expect(try FrontPrivilegePlan.decide(user: nil, brokerEUID: 1000, insecureSameUser: false) == .oneUID(1000))
        let same = FrontUser(uid: 1000, gid: 1000, name: "me")
        #expect(try FrontPrivilegePlan.decide(user: same, brokerEUID: 1000, insecureSameUser: false) == .oneUID(1000))
        #expect(FrontPrivilegePlan.automaticOneUID(user: nil, brokerEUID: 1000, insecureSameUser: false))
        // Root keeps its default front user; --insecure-same-user keeps its meaning.
        #expect(try FrontPrivilegePlan.decide(user: nil, brokerEUID: 0, insecureSameUser: false) == .switchUser(nobody))
        #expect(!FrontPrivilegePlan.automaticOneUID(user: nil, brokerEUID: 0, insecureSameUser: false))
        #expect(try FrontPrivilegePlan.decide(user: nil, brokerEUID: 1000, insecureSameUser: true) == .sameUserInsecure)
        #expect(!FrontPrivilegePlan.automaticOneUID(user: same, brokerEUID: 1000, insecureSameUser: true))
    }

    @Test func withoutOneUIDANonRootBrokerIsStillRefusedAndPointedToIt() throws {
        #expect {
            try FrontPrivilegePlan.decide(user: nobody, brokerEUID: 1000, insecureSameUser: false)
        } throws: { error in
            (error as? ConfigurationError)?.description.contains("drop --front-user") == true
        }
        #expect(
            try FrontPrivilegePlan.decide(user: nobody, brokerEUID: 0, insecureSameUser: false) == .switchUser(nobody))
    }
}
