import KMSCore
import KMSRuntime
import Logging
import Testing

@testable import Front

/// The front's one table of broker requests (BrokerCalls): ids, pairing, deadlines, late answers.
@Suite(.serialized)
struct BrokerCallsTests {
    typealias Outcome = Result<BrokerAnswer, BrokerCallError>

    let loop: EventLoop
    let logger = Logger(label: "test")

    init() throws { loop = try EventLoop() }

    func calls(firstID: UInt32 = 1, graceMillis: Int64 = BrokerCalls.abandonGraceMillis) -> BrokerCalls {
        BrokerCalls(loop: loop, logger: logger, firstID: firstID, graceMillis: graceMillis)
    }

    /// Runs the loop for `millis` (timers fire).
    func run(forMillis millis: Int64) {
        _ = loop.schedule(afterMillis: millis) { [loop] in loop.stop() }
        loop.run()
    }

    static func frame(
        _ type: BrokerMessageType, _ id: UInt32, _ payload: [UInt8] = [BrokerErrorCode.unavailable.rawValue]
    ) -> BrokerFrame {
        BrokerFrame(type: type, requestID: id, payload: payload)
    }

    static let encrypted = EncryptAnswer(code: .ok, ciphertext: [1], keyID: "k")

    func isViolation(_ verdict: BrokerCalls.Verdict) -> Bool {
        if case .violation = verdict { return true }
        return false
    }

    func isLate(_ verdict: BrokerCalls.Verdict) -> Bool {
        if case .late = verdict { return true }
        return false
    }

    @Test("an answer of the paired type for an outstanding request is delivered once, decoded")
    func deliversOnce() {
        let table = calls()
        let id = table.issue(.encryptRequest, deadlineMillis: nil) { _ in }
        #expect(table.count == 1)
        guard
            case .deliver(let answer, let completion) = table.accept(
                Self.frame(.encryptAnswer, id, Self.encrypted.payload()))
        else {
            Issue.record("not delivered")
            return
        }
        #expect(answer == .encrypt(Self.encrypted))
        #expect(completion != nil)
        #expect(table.count == 0)
        #expect(isLate(table.accept(Self.frame(.encryptAnswer, id))))
    }

    @Test("an answer of the wrong type for the request id is a violation")
    func wrongTypeIsViolation() {
        let table = calls()
        let id = table.issue(.encryptRequest, deadlineMillis: nil) { _ in }
        #expect(isViolation(table.accept(Self.frame(.decryptAnswer, id))))
    }

    @Test("an answer for a request id never issued is a violation", arguments: [UInt32(0), 2, 999, UInt32.max])
    func neverIssuedIsViolation(id: UInt32) {
        let table = calls()
        _ = table.issue(.statusRequest, deadlineMillis: nil) { _ in }  // id 1
        #expect(isViolation(table.accept(Self.frame(.statusAnswer, id))))
    }

    @Test("a request type sent by the broker is a violation")
    func requestTypeIsViolation() {
        let table = calls()
        let id = table.issue(.statusRequest, deadlineMillis: nil) { _ in }
        #expect(isViolation(table.accept(Self.frame(.statusRequest, id, []))))
    }

    @Test("a malformed answer payload is a violation")
    func malformedPayloadIsViolation() {
        let table = calls()
        let id = table.issue(.decryptRequest, deadlineMillis: nil) { _ in }
        #expect(isViolation(table.accept(Self.frame(.decryptAnswer, id, [0]))))
    }

    @Test("a cancelled request's answer is still type-checked and decoded, then has no completion")
    func cancelledIsCheckedThenDropped() {
        let table = calls()
        var outcomes: [Outcome] = []
        let first = table.issue(.decryptRequest, deadlineMillis: nil) { outcomes.append($0) }
        table.cancel(first)
        #expect(table.count == 1)
        #expect(isViolation(table.accept(Self.frame(.statusAnswer, first))))
        let second = table.issue(.decryptRequest, deadlineMillis: nil) { outcomes.append($0) }
        table.cancel(second)
        guard case .deliver(_, let completion) = table.accept(Self.frame(.decryptAnswer, second, [0, 0, 1, 7])) else {
            Issue.record("not decoded")
            return
        }
        #expect(completion == nil)
        #expect(outcomes.isEmpty)
    }

    @Test("the deadline completes the request once with deadlineExceeded; its answer is then dropped")
    func deadlineCompletesOnce() {
        let table = calls()
        var outcomes: [Outcome] = []
        let id = table.issue(.statusRequest, deadlineMillis: EventLoop.nowMillis() + 20) { outcomes.append($0) }
        run(forMillis: 80)
        #expect(outcomes.count == 1)
        #expect(outcomes.first.map { if case .failure(.deadlineExceeded) = $0 { true } else { false } } == true)
        #expect(table.count == 1)  // still outstanding: the answer will be checked
        guard case .deliver(_, let completion) = table.accept(Self.frame(.statusAnswer, id)) else {
            Issue.record("late answer not checked")
            return
        }
        #expect(completion == nil)
        #expect(outcomes.count == 1)
    }

    @Test("a request abandoned longer than the grace period is forgotten: its answer is late, not a violation")
    func forgottenIsLate() {
        let table = calls(graceMillis: 20)
        let id = table.issue(.decryptRequest, deadlineMillis: nil) { _ in }
        table.cancel(id)
        run(forMillis: 80)
        #expect(table.count == 0)
        #expect(isLate(table.accept(Self.frame(.decryptAnswer, id))))
    }

    @Test("an answer before the deadline cancels it: the completion is not called again")
    func answerCancelsTheDeadline() {
        let table = calls()
        var outcomes: [Outcome] = []
        let id = table.issue(.statusRequest, deadlineMillis: EventLoop.nowMillis() + 20) { outcomes.append($0) }
        guard case .deliver(let answer, let completion?) = table.accept(Self.frame(.statusAnswer, id)) else {
            Issue.record("not delivered")
            return
        }
        completion(.success(answer))
        run(forMillis: 60)
        #expect(outcomes.count == 1)
        #expect(table.count == 0)
    }

    @Test("request ids wrap around skipping 0 and ids still outstanding")
    func wrapsAround() {
        let table = calls(firstID: UInt32.max - 1)
        let a = table.issue(.statusRequest, deadlineMillis: nil) { _ in }
        let b = table.issue(.statusRequest, deadlineMillis: nil) { _ in }
        let c = table.issue(.statusRequest, deadlineMillis: nil) { _ in }
        #expect([a, b, c] == [UInt32.max - 1, UInt32.max, 1])
        // After the wrap every id counts as issued.
        #expect(isLate(table.accept(Self.frame(.statusAnswer, 12345))))
        let busy = calls(firstID: UInt32.max)
        let first = busy.issue(.statusRequest, deadlineMillis: nil) { _ in }
        let second = busy.issue(.statusRequest, deadlineMillis: nil) { _ in }  // 1
        guard case .deliver = busy.accept(Self.frame(.statusAnswer, first)) else {
            Issue.record("not delivered")
            return
        }
        var ids: Set<UInt32> = [second]
        for _ in 0..<3 { ids.insert(busy.issue(.statusRequest, deadlineMillis: nil) { _ in }) }
        #expect(ids.count == 4)
        #expect(!ids.contains(0))
    }

    @Test("removeAll returns the waiting completions oldest first and ids are never reused")
    func removeAllClearsButNeverReusesIds() {
        let table = calls()
        var order: [Int] = []
        let first = table.issue(.encryptRequest, deadlineMillis: nil) { _ in order.append(1) }
        let gone = table.issue(.statusRequest, deadlineMillis: nil) { _ in order.append(2) }
        _ = table.issue(.statusRequest, deadlineMillis: nil) { _ in order.append(3) }
        table.cancel(gone)
        for completion in table.removeAll() { completion(.failure(.connectionLost)) }
        #expect(order == [1, 3])
        #expect(table.count == 0)
        #expect(isLate(table.accept(Self.frame(.encryptAnswer, first))))
        #expect(table.issue(.encryptRequest, deadlineMillis: nil) { _ in } > first + 2)
    }
}
