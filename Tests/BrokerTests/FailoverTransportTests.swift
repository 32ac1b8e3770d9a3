import KMSRuntime
import KMSTestSupport
import Testing

@testable import Broker
@testable import VaultClient

/// One node of a scripted cluster: every address forwards to the same `FakeVault` (tokens and
/// keys are cluster-wide) unless the test makes it down, sealed, a redirecting standby, hung,
/// or answering a fixed status.
final class FakeNode: VaultTransport {
    enum Mode {
        case up
        case down
        /// The connection breaks after the request was sent (curl: "connection reset").
        case reset
        case sealed
        case standbyRedirect
        /// Never answers; the request times out after its own `timeoutMillis`, as curl's does.
        case hang
        case status(Int)
    }

    let loop: EventLoop
    let cluster: FakeVault
    var mode: Mode = .up
    private(set) var paths: [String] = []
    private(set) var timeouts: [Int] = []
    private var pending = 0

    init(loop: EventLoop, cluster: FakeVault) {
        self.loop = loop
        self.cluster = cluster
    }

    var inFlightCount: Int { pending }

    func send(_ request: VaultRequest, completion: @escaping (VaultResponse) -> Void) {
        paths.append(request.path)
        timeouts.append(request.timeoutMillis)
        func answer(after millis: Int64, _ response: VaultResponse) {
            pending += 1
            loop.schedule(afterMillis: millis) { [self] in
                pending -= 1
                completion(response)
            }
        }
        func json(_ status: Int, _ text: String) -> VaultResponse {
            let body = WipedBuffer(capacity: text.utf8.count)
            body.append(text)
            return VaultResponse(status: status, body: body)
        }
        switch mode {
        case .up:
            if request.path == "sys/health" { return answer(after: 1, json(200, #"{"standby":false}"#)) }
            cluster.send(request, completion: completion)
        case .down: answer(after: 1, .failed(.connectFailed))
        case .reset: answer(after: 1, .failed(.connectionReset))
        case .sealed: answer(after: 1, json(503, #"{"errors":["Vault is sealed"]}"#))
        case .standbyRedirect: answer(after: 1, json(307, ""))
        case .hang: answer(after: Int64(request.timeoutMillis), .failed(.timedOut))
        case .status(let status): answer(after: 1, json(status, #"{"errors":["permission denied"]}"#))
        }
    }

    func cancelAll() {}

    var sent: Int { paths.count }
}

struct FailoverTransportTests {
    let loop: EventLoop
    let cluster: FakeVault
    let nodes: [FakeNode]
    let logs = LogCapture()
    let transport: FailoverTransport

    init() throws { try self.init(count: 3, recheckIntervalMillis: 5_000) }

    init(count: Int, recheckIntervalMillis: Int64 = 5_000) throws {
        loop = try EventLoop()
        cluster = FakeVault(loop: loop)
        let loop = loop
        let cluster = cluster
        nodes = (0..<count).map { _ in FakeNode(loop: loop, cluster: cluster) }
        transport = FailoverTransport(
            loop: loop, addresses: (0..<count).map { "http://127.0.0.1:\(8200 + $0)" }, transports: nodes,
            logger: logs.logger, recheckIntervalMillis: recheckIntervalMillis)
    }

    /// Sends a login (no token needed) with `timeoutMillis` and runs the loop until it is answered.
    func call(timeoutMillis: Int = 3_000) -> (VaultResponse?, Int64) {
        var answer: VaultResponse?
        let started = EventLoop.nowMillis()
        let body = WipedBuffer(capacity: 64)
        body.append(#"{"role_id":"r","secret_id":"s"}"#)
        transport.send(
            VaultRequest(method: .post, path: "auth/approle/login", body: body, timeoutMillis: timeoutMillis)
        ) { answer = $0 }
        runLoop(loop, timeoutMillis: Int64(timeoutMillis) + 2_000) { answer != nil }
        return (answer, EventLoop.nowMillis() - started)
    }

    @Test func aRefusedConnectionIsAnsweredByTheNextAddressInTheSameCall() throws {
        nodes[0].mode = .down
        let (answer, _) = call()
        #expect(answer?.status == 200)
        #expect(nodes[0].sent == 1 && nodes[1].sent == 1 && nodes[2].sent == 0)
        #expect(transport.currentIndex == 1)
        // Later calls go straight to the new address.
        _ = call()
        #expect(nodes[0].sent == 1 && nodes[1].sent == 2)
        let failover = logs.events(named: "broker.vault.failover")
        #expect(failover.count == 1)
        #expect(failover.first?.fields["from_index"] == "0" && failover.first?.fields["to_index"] == "1")
        #expect(failover.first?.fields["reason"] == "connect failed")
    }

    @Test(arguments: [FakeNode.Mode.sealed, .standbyRedirect, .status(500), .status(502)])
    func sealedNodesRedirectingStandbysAnd5xxFailOver(mode: FakeNode.Mode) throws {
        nodes[0].mode = mode
        let (answer, _) = call()
        #expect(answer?.status == 200)
        #expect(transport.currentIndex == 1)
    }

    @Test(arguments: [400, 403, 404, 429])
    func answersTheClusterWouldRepeatDoNotFailOver(status: Int) throws {
        nodes[0].mode = .status(status)
        let (answer, _) = call()
        #expect(answer?.status == status)
        #expect(nodes[1].sent == 0)
        #expect(transport.currentIndex == 0)
    }

    @Test func aCallFailsOverAtMostOnceEvenWhenEveryAddressIsDown() throws {
        for node in nodes { node.mode = .down }
        let (answer, _) = call()
        #expect(answer?.transportError == .connectFailed)
        #expect(nodes.map(\.sent).reduce(0, +) == 2)
    }

    @Test func aWholeClusterDownDoesNotFlapTheSelectionPerCall() throws {
        for node in nodes { node.mode = .down }
        for _ in 0..<10 { _ = call() }
        // 0 -> 1 -> 2 as each is found down, then the selection stays: two moves, not ten.
        #expect(logs.events(named: "broker.vault.failover").count == 2)
        #expect(nodes.map(\.sent).reduce(0, +) == 20)
        nodes[0].mode = .up
        let (answer, _) = call()  // fails at 2, the retry at 0 is served: 0 is used next
        #expect(answer?.status == 200)
        #expect(transport.currentIndex == 0)
    }

    @Test func aHangingAddressLeavesHalfTheDeadlineToTheNextOne() throws {
        nodes[0].mode = .hang
        let (answer, elapsed) = call(timeoutMillis: 600)
        #expect(answer?.status == 200)
        #expect(nodes[0].timeouts == [300])
        #expect(nodes[1].sent == 1)
        #expect((nodes[1].timeouts.first ?? 0) <= 300 && (nodes[1].timeouts.first ?? 0) >= 250)
        #expect(elapsed < 600)
    }

    @Test func theSecondAttemptNeverOutlivesTheCallersDeadline() throws {
        nodes[0].mode = .hang
        nodes[1].mode = .hang
        let (answer, elapsed) = call(timeoutMillis: 400)
        #expect(answer?.transportError == .timedOut)
        #expect(elapsed < 400 + 100)
        #expect(nodes[2].sent == 0)
    }

    @Test func oneAddressGetsTheWholeDeadlineAndNoSecondAttempt() throws {
        let single = try FailoverTransportTests(count: 1)
        single.nodes[0].mode = .down
        let (answer, _) = single.call(timeoutMillis: 800)
        #expect(answer?.transportError == .connectFailed)
        #expect(single.nodes[0].timeouts == [800])
    }

    @Test func theBrokerReturnsToThePreferredAddressWhenItsHealthAnswers() throws {
        let fixture = try FailoverTransportTests(count: 2, recheckIntervalMillis: 50)
        fixture.nodes[0].mode = .down
        _ = fixture.call()
        #expect(fixture.transport.currentIndex == 1)
        // Still down: the recheck (sys/health, no token) fails and the broker stays on 1.
        runLoop(fixture.loop, forMillis: 120)
        #expect(fixture.nodes[0].paths.contains("sys/health"))
        #expect(fixture.transport.currentIndex == 1)
        fixture.nodes[0].mode = .up
        #expect(runLoop(fixture.loop, timeoutMillis: 1_000) { fixture.transport.currentIndex == 0 })
        #expect(fixture.transport.selector.returns == 1)
        #expect(fixture.logs.events(named: "broker.vault.preferred_back").count == 1)
        let before = fixture.nodes[1].sent
        _ = fixture.call()
        #expect(fixture.nodes[1].sent == before)
    }

    @Test func aSealedPreferredAddressIsNotTakenBack() throws {
        let fixture = try FailoverTransportTests(count: 2, recheckIntervalMillis: 30)
        fixture.nodes[0].mode = .sealed
        _ = fixture.call()
        runLoop(fixture.loop, forMillis: 200)
        #expect(fixture.nodes[0].paths.filter { $0 == "sys/health" }.count >= 2)
        #expect(fixture.transport.currentIndex == 1)
    }

    @Test func failingOverKeepsTheTokenNoNewLogin() throws {
        // The broker logs in through address 0, which then dies: Encrypt is answered through
        // address 1 with the same token (tokens are cluster-wide), and nothing logs in again.
        let directory = TemporaryDirectory()
        let secret = directory.write("secret-id", "4f7c1a2e-9b3d-4e5f-8a6b-7c8d9e0f1a2b\n")
        let configuration = BrokerConfiguration(
            vaultAddress: "http://127.0.0.1:8200,http://127.0.0.1:8201,http://127.0.0.1:8202",
            vaultKeyPath: "transit/keys/kek", roleID: "role-1234", secretIDPath: secret)
        let service = try BrokerService(
            configuration: configuration, loop: loop, logger: logs.logger, transport: transport)
        service.start()
        #expect(runLoop(loop) { service.healthReason == "ok" })
        nodes[0].mode = .down
        var result: Result<[UInt8], VaultCallError>?
        service.transit.encrypt(
            plaintext: Array(repeating: 7, count: 32), version: 1, uid: "u",
            deadlineMillis: EventLoop.nowMillis() + 3000
        ) { result = $0 }
        #expect(runLoop(loop) { result != nil })
        #expect((try? result?.get())?.starts(with: Array("vault:v1:".utf8)) == true)
        #expect(cluster.requests(to: "/login").count == 1)
        #expect(service.addresses.currentIndex == 1)
        let metrics = service.metricsSnapshot().values
        #expect(metrics[.vaultAddressCount] == 3)
        #expect(metrics[.vaultAddressIndex] == 1)
        #expect(metrics[.vaultAddressFailovers] == 1)
    }
}
