import KMSCore
import KMSRuntime
import Logging
import Testing

@testable import Front

#if canImport(Glibc)
    import Glibc
#endif

/// BrokerClient.send over a real seqpacket pair: one completion per request, whatever happens.
@Suite(.serialized)
struct BrokerClientTests {
    typealias Outcome = Result<BrokerAnswer, BrokerCallError>

    let loop: EventLoop
    let client: BrokerClient
    /// The broker's end of the pair.
    let broker: Int32

    init() throws {
        loop = try EventLoop()
        let (front, broker) = try UnixSocket.seqpacketPair()
        self.broker = broker
        client = BrokerClient(fd: front, loop: loop, logger: Logger(label: "test"))
    }

    /// Runs the loop until `done` holds (at most 2 s).
    func run(until done: () -> Bool) {
        let until = EventLoop.nowMillis() + 2_000
        while !done() && EventLoop.nowMillis() < until {
            _ = loop.schedule(afterMillis: 5) { [loop] in loop.stop() }
            loop.run()
        }
    }

    /// The next request the front sent, as the broker reads it.
    func received() throws -> (id: UInt32, request: BrokerRequest) {
        var packet = [UInt8](repeating: 0, count: Limits.maxBrokerPacketBytes)
        let count = recv(broker, &packet, packet.count, 0)
        let frame = try BrokerFrame.decode(Array(packet.prefix(max(0, count))))
        return (frame.requestID, try BrokerRequest.decode(frame))
    }

    func answer(_ id: UInt32, _ answer: BrokerAnswer) {
        #expect(UnixSocket.sendPacket(broker, answer.encode(requestID: id)))
    }

    func ready(maxInFlight: UInt32 = 4) throws {
        try client.start(frontVersion: "test")
        let hello = try received()
        #expect(hello.request == .hello(HelloRequest(frontVersion: "test")))
        answer(hello.id, .hello(HelloAnswer(code: .ok, brokerVersion: "b", maxInFlight: maxInFlight)))
        run { client.state != .awaitingHello }
        #expect(client.state == .ready(maxInFlight: Int(maxInFlight)))
    }

    @Test func beforeHelloIsAnsweredASendCompletesNotReadyAtOnce() throws {
        try client.start(frontVersion: "test")
        var outcome: Outcome?
        #expect(client.send(.status, deadlineMillis: EventLoop.nowMillis() + 1_000) { outcome = $0 } == nil)
        #expect(outcome == .failure(.notReady))
        close(broker)
    }

    @Test func theAnswerCompletesTheRequestDecoded() throws {
        try ready()
        var outcome: Outcome?
        let id = client.send(.status, deadlineMillis: EventLoop.nowMillis() + 1_000) { outcome = $0 }
        let request = try received()
        #expect(request.id == id && request.request == .status)
        answer(request.id, .status(StatusAnswer(code: .ok, healthz: "ok", keyID: "k")))
        run { outcome != nil }
        #expect(outcome == .success(.status(StatusAnswer(code: .ok, healthz: "ok", keyID: "k"))))
        close(broker)
    }

    @Test func atTheBrokersInFlightLimitASendCompletesTooManyRequestsAtOnce() throws {
        try ready(maxInFlight: 1)
        var first: Outcome?
        var second: Outcome?
        let id = client.send(.heartbeat, deadlineMillis: EventLoop.nowMillis() + 1_000) { first = $0 }
        #expect(id != nil)
        #expect(client.send(.heartbeat, deadlineMillis: EventLoop.nowMillis() + 1_000) { second = $0 } == nil)
        #expect(second == .failure(.tooManyRequests))
        // A cancelled request still counts until the broker answers it.
        client.cancel(try #require(id))
        #expect(client.send(.heartbeat, deadlineMillis: EventLoop.nowMillis() + 1_000) { _ in } == nil)
        #expect(first == nil)
        close(broker)
    }

    @Test func aBrokerThatClosesFailsTheClientThenEveryWaitingRequestWithConnectionLost() throws {
        try ready()
        var events: [String] = []
        client.onFailure = { reason in events.append("failure: \(reason)") }
        client.send(.metrics, deadlineMillis: EventLoop.nowMillis() + 1_000) { events.append("metrics: \($0)") }
        let gone = client.send(.status, deadlineMillis: EventLoop.nowMillis() + 1_000) { _ in events.append("status") }
        client.cancel(try #require(gone))
        close(broker)
        run { client.state == .failed }
        #expect(
            events == [
                "failure: broker closed the connection", "metrics: failure(Front.BrokerCallError.connectionLost)",
            ])
    }

    @Test func anAnswerNotPairedWithItsRequestFailsTheClient() throws {
        try ready()
        var reason: String?
        client.onFailure = { reason = $0 }
        let id = try #require(client.send(.status, deadlineMillis: EventLoop.nowMillis() + 1_000) { _ in })
        _ = try received()
        answer(id, .heartbeat(HeartbeatAnswer(code: .ok)))
        run { client.state == .failed }
        #expect(reason?.contains("answer type 13 for a request of type 4") == true)
        close(broker)
    }
}
