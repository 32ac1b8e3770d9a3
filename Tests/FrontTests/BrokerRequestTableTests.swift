import KMSCore
import Testing

@testable import Front

struct BrokerRequestTableTests {
    @Test("an answer of the paired type for an outstanding request is delivered once")
    func deliversOnce() {
        var table = BrokerRequestTable()
        let id = table.issue(.encryptRequest)
        #expect(table.count == 1)
        #expect(table.accept(type: .encryptAnswer, requestID: id) == .deliver(request: .encryptRequest))
        #expect(table.count == 0)
        #expect(table.accept(type: .encryptAnswer, requestID: id) == .late)
    }

    @Test("an answer of the wrong type for the request id is a violation")
    func wrongTypeIsViolation() {
        var table = BrokerRequestTable()
        let id = table.issue(.encryptRequest)
        guard case .violation = table.accept(type: .decryptAnswer, requestID: id) else {
            Issue.record("wrong answer type accepted")
            return
        }
    }

    @Test("an answer for a request id never issued is a violation", arguments: [UInt32(0), 2, 999, UInt32.max])
    func neverIssuedIsViolation(id: UInt32) {
        var table = BrokerRequestTable()
        _ = table.issue(.statusRequest)  // id 1
        guard case .violation = table.accept(type: .statusAnswer, requestID: id) else {
            Issue.record("answer for id \(id) accepted")
            return
        }
    }

    @Test("a request type sent by the broker is a violation")
    func requestTypeIsViolation() {
        var table = BrokerRequestTable()
        let id = table.issue(.statusRequest)
        guard case .violation = table.accept(type: .statusRequest, requestID: id) else {
            Issue.record("request type accepted from the broker")
            return
        }
    }

    @Test("a late answer for a forgotten request is dropped, not a violation")
    func forgottenIsLate() {
        var table = BrokerRequestTable()
        let id = table.issue(.decryptRequest)
        table.forget(id)
        #expect(table.count == 0)
        #expect(table.accept(type: .decryptAnswer, requestID: id) == .late)
    }

    @Test("an abandoned but outstanding request still has its answer type checked")
    func outstandingAnswerTypeChecked() {
        var table = BrokerRequestTable()
        let id = table.issue(.decryptRequest)
        guard case .violation = table.accept(type: .statusAnswer, requestID: id) else {
            Issue.record("wrong type accepted")
            return
        }
    }

    @Test("request ids wrap around skipping 0 and ids still outstanding")
    func wrapsAround() {
        var table = BrokerRequestTable(firstID: UInt32.max - 1)
        let a = table.issue(.statusRequest)
        let b = table.issue(.statusRequest)
        let c = table.issue(.statusRequest)
        #expect([a, b, c] == [UInt32.max - 1, UInt32.max, 1])
        // After the wrap every id counts as issued.
        #expect(table.accept(type: .statusAnswer, requestID: 12345) == .late)
        var busy = BrokerRequestTable(firstID: UInt32.max)
        let first = busy.issue(.statusRequest)
        let second = busy.issue(.statusRequest)  // 1
        #expect(busy.accept(type: .statusAnswer, requestID: first) == .deliver(request: .statusRequest))
        var ids: Set<UInt32> = [second]
        for _ in 0..<3 { ids.insert(busy.issue(.statusRequest)) }
        #expect(ids.count == 4)
        #expect(!ids.contains(0))
    }
}
