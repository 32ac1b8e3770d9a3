import KMSCore
import KMSTestSupport
import Testing

@testable import Broker
@testable import VaultClient

/// One test per rule of the broker's deny-by-default dispatcher, driven over a real seqpacket
/// pair: each violation logs exactly one `broker.reject` line and closes that connection.
@Suite(.serialized)
struct DispatcherRejectionTests {
    private func expectRejected(
        _ harness: BrokerHarness, reason fragment: String, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        #expect(harness.waitForClose(), "broker kept the connection open", sourceLocation: sourceLocation)
        #expect(harness.rejectLines.count == 1, sourceLocation: sourceLocation)
        let reason = harness.rejectLines.first?.fields["reason"] ?? ""
        #expect(reason.contains(fragment), "reason was \(reason)", sourceLocation: sourceLocation)
        #expect(harness.closeCount == 1, sourceLocation: sourceLocation)
        #expect(harness.service.openConnectionCount == 0, sourceLocation: sourceLocation)
    }

    @Test func unknownMessageTypeClosesTheConnection() throws {
        let harness = try BrokerHarness()
        #expect(harness.hello())
        harness.sendRaw(BrokerHarness.header(type: 0x42, length: 0))
        expectRejected(harness, reason: "unknown message type 66")
    }

    @Test func answerTypeSentByTheFrontClosesTheConnection() throws {
        let harness = try BrokerHarness()
        #expect(harness.hello())
        harness.send(.statusAnswer, id: 2, payload: StatusAnswer(code: .ok, healthz: "ok", keyID: "x").payload())
        expectRejected(harness, reason: "answer type")
    }

    @Test func metricsBeforeHelloClosesTheConnection() throws {
        let harness = try BrokerHarness()
        harness.send(.metricsRequest, id: 1)
        expectRejected(harness, reason: "awaitingHello")
    }

    @Test func metricsRequestWithAPayloadClosesTheConnection() throws {
        let harness = try BrokerHarness()
        #expect(harness.hello())
        harness.send(.metricsRequest, id: 2, payload: [1])
        expectRejected(harness, reason: "trailing bytes")
    }

    @Test func statusBeforeHelloClosesTheConnection() throws {
        let harness = try BrokerHarness()
        harness.send(.statusRequest, id: 1)
        expectRejected(harness, reason: "awaitingHello")
        #expect(harness.helloCount == 0)
    }

    @Test func encryptBeforeHelloClosesTheConnectionWithoutAVaultCall() throws {
        let harness = try BrokerHarness()
        #expect(harness.startAndWaitHealthy())
        let before = harness.vault.transitCalls.count
        harness.send(
            .encryptRequest, id: 1, payload: EncryptRequest(deadlineMillis: 0, uid: "u", plaintext: [1]).payload())
        expectRejected(harness, reason: "awaitingHello")
        #expect(harness.vault.transitCalls.count == before)
    }

    @Test func secondHelloClosesTheConnection() throws {
        let harness = try BrokerHarness()
        #expect(harness.hello())
        #expect(harness.helloCount == 1)
        harness.send(.helloRequest, id: 2, payload: HelloRequest(frontVersion: "again").payload())
        expectRejected(harness, reason: "")
        #expect(harness.helloCount == 1)
    }

    @Test func trailingBytesAfterAnEmptyRequestCloseTheConnection() throws {
        let harness = try BrokerHarness()
        #expect(harness.hello())
        harness.send(.statusRequest, id: 2, payload: [0])
        expectRejected(harness, reason: "trailing bytes")
    }

    @Test func trailingBytesAfterAnEncryptPayloadCloseTheConnection() throws {
        let harness = try BrokerHarness()
        #expect(harness.hello())
        let payload = EncryptRequest(deadlineMillis: 0, uid: "u", plaintext: [1, 2]).payload() + [0xFF]
        harness.send(.encryptRequest, id: 2, payload: payload)
        expectRejected(harness, reason: "trailing bytes")
    }

    @Test func declaredLengthDifferentFromThePayloadClosesTheConnection() throws {
        let harness = try BrokerHarness()
        #expect(harness.hello())
        harness.sendRaw(BrokerHarness.header(type: BrokerMessageType.statusRequest.rawValue, length: 4) + [0, 0])
        expectRejected(harness, reason: "payload length 4 but 2 bytes follow")
    }

    @Test func oversizedPacketClosesTheConnection() throws {
        let harness = try BrokerHarness()
        #expect(harness.hello())
        let size = Limits.maxBrokerPacketBytes + 100
        harness.sendRaw(
            BrokerHarness.header(type: BrokerMessageType.encryptRequest.rawValue, length: UInt32(size - 16))
                + [UInt8](repeating: 0x41, count: size - 16))
        expectRejected(harness, reason: "oversized")
    }

    @Test func truncatedHeaderClosesTheConnection() throws {
        let harness = try BrokerHarness()
        #expect(harness.hello())
        harness.sendRaw(
            Array(BrokerHarness.header(type: BrokerMessageType.statusRequest.rawValue, length: 0).prefix(10)))
        expectRejected(harness, reason: "truncated")
    }

    @Test func badMagicClosesTheConnection() throws {
        let harness = try BrokerHarness()
        harness.sendRaw(
            BrokerHarness.header(magic: (0x47, 0x45), type: BrokerMessageType.helloRequest.rawValue, length: 0))
        expectRejected(harness, reason: "bad magic")
    }

    @Test func unsupportedProtocolVersionClosesTheConnection() throws {
        let harness = try BrokerHarness()
        let hello = HelloRequest(frontVersion: "v9").payload()
        harness.sendRaw(
            BrokerHarness.header(version: 9, type: BrokerMessageType.helloRequest.rawValue, length: UInt32(hello.count))
                + hello)
        expectRejected(harness, reason: "unsupported protocol version 9")
    }

    @Test func fieldLongerThanItsLimitClosesTheConnection() throws {
        let harness = try BrokerHarness()
        #expect(harness.hello())
        let plaintext = [UInt8](repeating: 1, count: Limits.maxPlaintextBytes + 1)
        harness.send(
            .encryptRequest, id: 2, payload: EncryptRequest(deadlineMillis: 0, uid: "u", plaintext: plaintext).payload()
        )
        expectRejected(harness, reason: "field plaintext too long")
    }

    @Test func emptyPlaintextClosesTheConnection() throws {
        let harness = try BrokerHarness()
        #expect(harness.hello())
        harness.send(
            .encryptRequest, id: 2, payload: EncryptRequest(deadlineMillis: 0, uid: "u", plaintext: []).payload())
        expectRejected(harness, reason: "field plaintext empty")
    }

    @Test func requestsBeyondTheInFlightLimitAreAnsweredTooManyRequests() throws {
        let harness = try BrokerHarness()
        #expect(harness.startAndWaitHealthy())
        #expect(harness.hello())
        harness.vault.script = { request in request.path.contains("/encrypt/") ? .hold : nil }
        let limit = Limits.maxInFlightPerFront
        var sent = 0
        // Send in batches with loop turns in between, so no socket buffer fills up.
        while sent <= limit {
            for _ in 0..<min(32, limit + 1 - sent) {
                sent += 1
                harness.send(
                    .encryptRequest, id: UInt32(100 + sent),
                    payload: EncryptRequest(deadlineMillis: 0, uid: "u\(sent)", plaintext: [7]).payload())
            }
            runLoop(harness.loop, forMillis: 5)
        }
        let overflow = harness.waitForAnswer(id: UInt32(100 + limit + 1))
        #expect(overflow?.type == .encryptAnswer)
        #expect(try overflow.flatMap { try $0.answer().encrypt?.code } == .tooManyRequests)
        #expect(harness.vault.requests(to: "/encrypt/kek").count == limit)
        #expect(!harness.brokerClosed)
        #expect(harness.rejectLines.isEmpty)

        // Releasing the held calls answers all of them, each echoing its request id.
        harness.vault.script = nil
        harness.vault.releaseHeld()
        #expect(
            runLoop(harness.loop) {
                harness.drain()
                return harness.received.filter { $0.type == .encryptAnswer }.count == limit + 1
            })
        let ids = Set(harness.received.filter { $0.type == .encryptAnswer }.map(\.requestID))
        #expect(ids == Set((101...(100 + UInt32(limit) + 1))))
        #expect(harness.service.frontRequestsInFlight == 0)
    }
}
