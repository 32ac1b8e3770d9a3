import KMSRuntime
import Testing

@testable import Broker
@testable import VaultClient

/// Issue 13 finding 7: a front user in group root is refused like uid 0.
struct FrontUserGroupTests {
    @Test func aFrontUserWhosePrimaryGroupIsRootIsRefused() {
        #expect(throws: ConfigurationError.self) {
            try FrontPrivilegePlan.decide(
                user: FrontUser(uid: 4000, gid: 0, name: "vkk-no-such-user"), brokerEUID: 0, insecureSameUser: false)
        }
    }

    @Test func anUnprivilegedFrontUserIsStillAccepted() throws {
        let nobody = try FrontUser.resolve("nobody")
        #expect(!nobody.groupIDs().contains(0))
        #expect(
            try FrontPrivilegePlan.decide(user: nobody, brokerEUID: 0, insecureSameUser: false) == .switchUser(nobody))
    }

    @Test func theGroupListComesFromNSSIncludingSupplementaryGroups() throws {
        // root's list holds gid 0; a uid without a passwd entry has just its own gid.
        #expect(try FrontUser.resolve("root").groupIDs().contains(0))
        #expect(FrontUser(uid: 4242, gid: 4242, name: "vkk-no-such-user").groupIDs() == [4242])
    }
}
