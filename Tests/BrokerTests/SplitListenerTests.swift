import Testing

@testable import Broker
@testable import VaultClient

struct SplitListenerTests {
    @Test func aConfiguredUidMustMatchThePeer() {
        let policy = SplitListener.PeerPolicy(uid: 65534, gid: nil)
        #expect(policy.admits(uid: 65534, gid: 1))
        #expect(!policy.admits(uid: 0, gid: 65534))
        #expect(!policy.admits(uid: 4242, gid: 65534))
    }

    @Test func aConfiguredGidMustMatchThePeer() {
        let policy = SplitListener.PeerPolicy(uid: nil, gid: 991)
        #expect(policy.admits(uid: 1, gid: 991))
        #expect(!policy.admits(uid: 1, gid: 992))
    }

    @Test func withBothConfiguredBothMustMatch() {
        let policy = SplitListener.PeerPolicy(uid: 990, gid: 991)
        #expect(policy.admits(uid: 990, gid: 991))
        #expect(!policy.admits(uid: 990, gid: 0))
        #expect(!policy.admits(uid: 0, gid: 991))
    }

    @Test func anEmptyPolicyAdmitsNobody() {
        #expect(!SplitListener.PeerPolicy(uid: nil, gid: nil).admits(uid: 0, gid: 0))
    }
}
