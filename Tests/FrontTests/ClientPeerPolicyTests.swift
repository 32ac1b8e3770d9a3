import KMSRuntime
import Testing

@testable import Front

/// Issue 13 finding 4: who may use the KMS socket, and abstract names only when restricted.
struct ClientPeerPolicyTests {
    static func configuration(listen: String) throws(ConfigurationError) -> FrontConfiguration {
        try FrontConfiguration(
            brokerFD: "3", brokerAddress: nil, listenFD: nil, listenAddress: listen, logLevel: nil, logFormat: nil,
            environment: { _ in nil }, defaultLogFormat: { .json })
    }

    @Test func theAllowedIDsRootAndTheFrontsOwnUIDAreAdmitted() {
        let policy = ClientPeerPolicy(uid: 0, gid: nil)
        #expect(policy.admits(uid: 0, gid: 5, ownUID: 65534))
        #expect(policy.admits(uid: 65534, gid: 5, ownUID: 65534))
        #expect(!policy.admits(uid: 65533, gid: 0, ownUID: 65534))
        let both = ClientPeerPolicy(uid: 1000, gid: 1000)
        #expect(both.admits(uid: 1000, gid: 1000, ownUID: 65534))
        #expect(!both.admits(uid: 1000, gid: 1001, ownUID: 65534))
        let group = ClientPeerPolicy(uid: nil, gid: 998)
        #expect(group.admits(uid: 4242, gid: 998, ownUID: 65534))
        #expect(!group.admits(uid: 4242, gid: 999, ownUID: 65534))
    }

    @Test func anAbstractListenAddressNeedsClientIDsOrTheDevelopmentFlag() throws {
        var abstract = try Self.configuration(listen: "unix:///@kms")
        #expect(throws: ConfigurationError.self) {
            try abstract.applyClientPeer(
                allowedClientUID: nil, allowedClientGID: nil, insecureAbstractListenAddress: false,
                environment: { _ in nil })
        }
        try abstract.applyClientPeer(
            allowedClientUID: "0", allowedClientGID: nil, insecureAbstractListenAddress: false,
            environment: { _ in nil })
        #expect(abstract.clientPeer == ClientPeerPolicy(uid: 0, gid: nil))
        try abstract.applyClientPeer(
            allowedClientUID: nil, allowedClientGID: nil, insecureAbstractListenAddress: true,
            environment: { _ in nil })
        #expect(abstract.clientPeer == nil)
        var path = try Self.configuration(listen: "unix:///run/kms.sock")
        try path.applyClientPeer(
            allowedClientUID: nil, allowedClientGID: nil, insecureAbstractListenAddress: false,
            environment: { _ in nil })
        #expect(path.clientPeer == nil)
        #expect(throws: ConfigurationError.self) {
            try path.applyClientPeer(
                allowedClientUID: "apiserver", allowedClientGID: nil, insecureAbstractListenAddress: false,
                environment: { _ in nil })
        }
    }
}

/// Repetitive lines are written at most once per interval and key, with the count left out.
struct LogRateLimiterTests {
    @Test func oneLinePerIntervalAndKeyWithTheSuppressedCount() {
        let limiter = LogRateLimiter(intervalMillis: 10_000)
        #expect(limiter.admit("a", now: 0) == 0)
        #expect(limiter.admit("a", now: 1) == nil)
        #expect(limiter.admit("a", now: 9_999) == nil)
        #expect(limiter.admit("b", now: 5_000) == 0)
        #expect(limiter.admit("a", now: 10_000) == 2)
        #expect(limiter.admit("a", now: 10_001) == nil)
    }
}
