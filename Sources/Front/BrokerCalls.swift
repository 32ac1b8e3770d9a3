import KMSCore
import KMSRuntime
import Logging

/// Why a broker request got no answer.
enum BrokerCallError: Error, Equatable {
    /// No connection, or HELLO not answered yet.
    case notReady
    /// The broker's in-flight limit for this connection is reached.
    case tooManyRequests
    /// The deadline passed before the broker answered.
    case deadlineExceeded
    /// The connection failed, or was replaced, with the request outstanding.
    case connectionLost
}

/// The front's one record of its broker requests, owned by `BrokerClient`: for each request id the
/// request's type (so that its answer is decoded against the one answer type paired with it), the
/// completion and the deadline. Every request goes through here, the gRPC calls' and the
/// health/metrics polls'.
///
/// Late answers: when the deadline passes (or the caller cancels: its client went away) before
/// the broker answers, the completion is called (`deadlineExceeded`) or dropped at once, but the
/// request stays *outstanding*, so that the broker's eventual answer is still decoded and checked
/// and then dropped. Outstanding requests count against the broker's in-flight limit, which bounds
/// this table. A request the broker has not answered `abandonGraceMillis` later is forgotten (the
/// broker caps every Vault call with the deadline it was given, so this only happens if the
/// broker is wedged); an answer after that carries an id below the counter that is no longer
/// outstanding, and is dropped as late rather than treated as a violation, because the front
/// cannot tell it from a legitimate straggler. An answer for an id the front never issued is
/// always a violation.
final class BrokerCalls {
    typealias Completion = (Result<BrokerAnswer, BrokerCallError>) -> Void

    /// How long a request whose caller stopped waiting stays outstanding: the broker caps each
    /// request at the deadline it was given (at most `Limits.maxDeadlineMillis`), so twice that is
    /// generous.
    static let abandonGraceMillis = 2 * Int64(Limits.maxDeadlineMillis)

    enum Verdict {
        /// The answer to an outstanding request; `completion` nil when its caller stopped waiting.
        case deliver(BrokerAnswer, completion: Completion?)
        /// For a request issued and forgotten since.
        case late
        /// A protocol violation (ends the connection).
        case violation(String)
    }

    private struct Call {
        let request: BrokerMessageType
        var completion: Completion?
        /// The deadline, then the abandon grace period.
        var timer: EventLoop.TimerID?
    }

    private unowned let loop: EventLoop
    private let logger: Logger
    private let graceMillis: Int64
    /// Request ids start at 1 and wrap around, skipping 0 and ids still outstanding.
    private var nextID: UInt32
    private var wrapped = false
    private var calls: [UInt32: Call] = [:]

    /// `firstID` and `graceMillis` other than the defaults only in tests (to reach the wrap-around
    /// and the forgetting).
    init(loop: EventLoop, logger: Logger, firstID: UInt32 = 1, graceMillis: Int64 = abandonGraceMillis) {
        self.loop = loop
        self.logger = logger
        self.graceMillis = graceMillis
        nextID = firstID
    }

    /// Outstanding requests, including those whose caller stopped waiting.
    var count: Int { calls.count }

    /// Issues an id for a request of `type`. `deadlineMillis` (monotonic, `EventLoop.nowMillis`)
    /// nil: no deadline (HELLO).
    func issue(_ type: BrokerMessageType, deadlineMillis: Int64?, completion: @escaping Completion) -> UInt32 {
        while nextID == 0 || calls[nextID] != nil { advance() }
        let id = nextID
        advance()
        var call = Call(request: type, completion: completion)
        if let deadlineMillis {
            call.timer = loop.schedule(afterMillis: deadlineMillis - EventLoop.nowMillis()) { [weak self] in
                self?.deadlinePassed(id)
            }
        }
        calls[id] = call
        return id
    }

    private func advance() {
        if nextID == UInt32.max { wrapped = true }
        nextID &+= 1
    }

    private func wasIssued(_ id: UInt32) -> Bool { id != 0 && (wrapped || id < nextID) }

    /// The caller no longer waits (its client went away): the completion is dropped, the request
    /// stays outstanding for the grace period.
    func cancel(_ id: UInt32) {
        guard calls[id]?.completion != nil else { return }
        calls[id]?.completion = nil
        abandon(id)
    }

    private func deadlinePassed(_ id: UInt32) {
        guard let completion = calls[id]?.completion else { return }
        calls[id]?.completion = nil
        abandon(id)
        completion(.failure(.deadlineExceeded))
    }

    private func abandon(_ id: UInt32) {
        if let timer = calls[id]?.timer { loop.cancel(timer) }
        calls[id]?.timer = loop.schedule(afterMillis: graceMillis) { [weak self] in
            guard let self, self.calls.removeValue(forKey: id) != nil else { return }
            self.logger.warning("broker.request_forgotten", metadata: ["request_id": "\(id)"])
        }
    }

    /// Checks a frame from the broker against the table and decodes it as the answer to its
    /// request (`BrokerAnswer.decode`, KMSCore): also when its caller stopped waiting, since a
    /// malformed answer is a protocol error either way.
    func accept(_ frame: BrokerFrame) -> Verdict {
        guard !frame.type.isRequest else { return .violation("broker sent request type \(frame.type.rawValue)") }
        guard let call = calls[frame.requestID] else {
            return wasIssued(frame.requestID)
                ? .late : .violation("answer for request \(frame.requestID) never sent")
        }
        let answer: BrokerAnswer
        do throws(BrokerProtocolError) {
            answer = try BrokerAnswer.decode(frame, answering: call.request)
        } catch {
            return .violation("malformed answer to request \(frame.requestID): \(error)")
        }
        if let timer = call.timer { loop.cancel(timer) }
        calls[frame.requestID] = nil
        return .deliver(answer, completion: call.completion)
    }

    /// The connection is gone: every request is dropped (ids keep counting up, so a new connection
    /// never reuses an id of the old one); returns the completions still waiting, oldest first.
    func removeAll() -> [Completion] {
        let waiting = calls.sorted { $0.key < $1.key }.compactMap { $0.value.completion }
        for call in calls.values { if let timer = call.timer { loop.cancel(timer) } }
        calls.removeAll()
        return waiting
    }
}
