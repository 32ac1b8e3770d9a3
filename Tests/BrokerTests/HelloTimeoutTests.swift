import KMSCore
import KMSRuntime
import KMSTestSupport
import Testing

@testable import Broker
@testable import VaultClient

#if canImport(Glibc)
    import Glibc
#endif

/// Issue 13 finding 7: in the split topology a connection that has not said HELLO within a few
/// seconds is closed, so idle peers cannot hold the broker's few connection slots.
struct HelloTimeoutTests {
    @Test func aPeerThatNeverSaysHelloIsClosedAndOneThatDoesStays() throws {
        let harness = try BrokerHarness()
        harness.service.start()
        let (silentBroker, silentPeer) = try UnixSocket.seqpacketPair()
        defer { close(silentPeer) }
        var silentClosed = false
        harness.service.attachFront(
            fd: silentBroker, helloTimeoutMillis: 300, onHello: {}, onClose: { silentClosed = true })
        let (talkingBroker, talkingPeer) = try UnixSocket.seqpacketPair()
        defer { close(talkingPeer) }
        var talkingClosed = false
        harness.service.attachFront(
            fd: talkingBroker, helloTimeoutMillis: 300, onHello: {}, onClose: { talkingClosed = true })
        let hello = BrokerFrame(
            type: .helloRequest, requestID: 1, payload: HelloRequest(frontVersion: "t").payload()
        ).encoded()
        _ = hello.withUnsafeBytes { send(talkingPeer, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        runLoop(harness.loop, forMillis: 700)
        #expect(silentClosed)
        #expect(!talkingClosed)
        #expect(harness.logs.events(named: "broker.front.hello_timeout").count == 1)
    }
}
