import KMSRuntime
import KMSTestSupport
import Testing

@testable import Broker
@testable import VaultClient

/// Issue 16: "one failover per call at most, never a retry storm". One KMS call (an Encrypt
/// through `TransitClient`, as the broker sends it) costs at most two Vault requests: with one
/// address, the Transit retry (a broken connection or a 5xx that is not "sealed"); with several,
/// the failover to the next address and nothing on top of it. Each failure class is counted in
/// both modes with every node failing the same way (the worst case: nothing serves the retry).
struct RetryBudgetTests {
    /// How a node fails, and the Encrypt requests one call costs with one address and with two.
    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        let singleAddress: Int
        let severalAddresses: Int
        var testDescription: String { name }

        var mode: FakeNode.Mode {
            switch name {
            case "refused": .down
            case "reset": .reset
            case "hang": .hang
            case "503 sealed": .sealed
            case "307": .standbyRedirect
            case "500": .status(500)
            case "429": .status(429)
            default: .status(400)
            }
        }
    }

    static let cases: [Case] = [
        Case(name: "refused", singleAddress: 1, severalAddresses: 2),
        Case(name: "reset", singleAddress: 2, severalAddresses: 2),
        Case(name: "hang", singleAddress: 1, severalAddresses: 2),
        Case(name: "503 sealed", singleAddress: 1, severalAddresses: 2),
        Case(name: "307", singleAddress: 1, severalAddresses: 2),
        Case(name: "500", singleAddress: 2, severalAddresses: 2),
        Case(name: "429", singleAddress: 1, severalAddresses: 1),
        Case(name: "400", singleAddress: 1, severalAddresses: 1),
    ]

    /// A started broker over `count` scripted nodes of one cluster, logged in and ready.
    final class Fixture {
        let loop: EventLoop
        let cluster: FakeVault
        let nodes: [FakeNode]
        let logs = LogCapture()
        let service: BrokerService
        let directory = TemporaryDirectory()

        init(count: Int) throws {
            loop = try EventLoop()
            cluster = FakeVault(loop: loop)
            let loop = loop
            let cluster = cluster
            nodes = (0..<count).map { _ in FakeNode(loop: loop, cluster: cluster) }
            let addresses = (0..<count).map { "http://127.0.0.1:\(8200 + $0)" }
            let transport = FailoverTransport(
                loop: loop, addresses: addresses, transports: nodes, logger: logs.logger)
            let secret = directory.write("secret-id", "4f7c1a2e-9b3d-4e5f-8a6b-7c8d9e0f1a2b\n")
            service = try BrokerService(
                configuration: BrokerConfiguration(
                    vaultAddress: addresses.joined(separator: ","), vaultKeyPath: "transit/keys/kek",
                    roleID: "role-1234", secretIDPath: secret),
                loop: loop, logger: logs.logger, transport: transport)
            service.start()
            #expect(runLoop(loop) { self.service.healthReason == "ok" })
        }

        var encryptRequests: Int { nodes.map { $0.paths.filter { $0.contains("/encrypt/") }.count }.reduce(0, +) }

        /// One Encrypt with `deadlineMillis` to go; returns its result once answered.
        func encrypt(deadlineMillis: Int64 = 800) -> Result<[UInt8], VaultCallError>? {
            var result: Result<[UInt8], VaultCallError>?
            service.transit.encrypt(
                plaintext: Array(repeating: 7, count: 32), version: 1, uid: "u",
                deadlineMillis: EventLoop.nowMillis() + deadlineMillis
            ) { result = $0 }
            #expect(runLoop(loop, timeoutMillis: deadlineMillis + 2_000) { result != nil })
            return result
        }
    }

    @Test("one address: the Transit retry alone, at most two requests", arguments: cases)
    func oneAddressKeepsTheSingleTransitRetry(failure: Case) throws {
        let fixture = try Fixture(count: 1)
        fixture.nodes[0].mode = failure.mode
        let result = fixture.encrypt()
        #expect((try? result?.get()) == nil, "the call failed")
        #expect(fixture.encryptRequests == failure.singleAddress)
    }

    @Test("several addresses, all failing: the failover is the retry, at most two requests", arguments: cases)
    func severalAddressesSpendTheBudgetOnTheFailover(failure: Case) throws {
        let fixture = try Fixture(count: 3)
        for node in fixture.nodes { node.mode = failure.mode }
        let result = fixture.encrypt()
        #expect((try? result?.get()) == nil, "the call failed")
        #expect(fixture.encryptRequests == failure.severalAddresses)
        #expect(fixture.nodes[2].paths.filter { $0.contains("/encrypt/") }.isEmpty, "no third address tried")
    }

    @Test("several addresses, the first failing: the second one serves the same call")
    func theFailoverServesTheCall() throws {
        for failure in Self.cases where failure.severalAddresses == 2 {
            let fixture = try Fixture(count: 2)
            fixture.nodes[0].mode = failure.mode
            let result = fixture.encrypt()
            #expect((try? result?.get())?.starts(with: Array("vault:v1:".utf8)) == true, "\(failure.name)")
            #expect(fixture.encryptRequests == 2, "\(failure.name)")
            #expect(fixture.service.addresses.currentIndex == 1, "\(failure.name)")
        }
    }

    @Test("one address: a retry that is served answers the call")
    func oneAddressRetryServes() throws {
        let fixture = try Fixture(count: 1)
        fixture.nodes[0].mode = .reset
        var result: Result<[UInt8], VaultCallError>?
        fixture.service.transit.encrypt(
            plaintext: Array(repeating: 7, count: 32), version: 1, uid: "u",
            deadlineMillis: EventLoop.nowMillis() + 800
        ) { result = $0 }
        // The first answer (a reset) comes after 1 ms; the node is healthy for the retry.
        fixture.loop.schedule(afterMillis: 0) { fixture.nodes[0].mode = .up }
        #expect(runLoop(fixture.loop) { result != nil })
        #expect((try? result?.get())?.starts(with: Array("vault:v1:".utf8)) == true)
        #expect(fixture.encryptRequests == 2)
    }
}
