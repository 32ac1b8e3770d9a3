import KMSCore

/// The front's record of its broker requests: which ids it has issued and which answer type each
/// outstanding one answers (the answer type legal for it is `BrokerProtocol.pairs`). It decides, for every answer, whether it is deliverable, a harmless
/// late answer, or a protocol violation (which ends the front: the broker restarts it).
///
/// Late answers: when a call's deadline passes (or its client goes away) before the broker
/// answers, the call is answered or dropped at once but its request stays *outstanding* here, so
/// that the broker's eventual answer is still checked against the type it must have and then
/// dropped silently. Outstanding requests count against the broker's in-flight limit, which
/// bounds this table. A request the broker has not answered after a generous grace period is
/// `forget`-ten (the broker caps every Vault call with the deadline it was given, so this only
/// happens if the broker is wedged); an answer arriving after that carries an id below the
/// counter that is no longer outstanding, and is dropped as late rather than treated as a
/// violation, because the front cannot tell it from a legitimate straggler. An answer for an id
/// the front never issued is always a violation.
struct BrokerRequestTable {
    enum Verdict: Equatable {
        /// Deliverable: the answer to a request of this type.
        case deliver(request: BrokerMessageType)
        case late
        case violation(String)
    }

    /// Request ids start at 1 and wrap around, skipping 0 and ids still outstanding.
    private var nextID: UInt32
    private var wrapped = false
    private var outstanding: [UInt32: BrokerMessageType] = [:]

    /// `firstID` other than 1 only in tests (to reach the wrap-around).
    init(firstID: UInt32 = 1) { nextID = firstID }

    var count: Int { outstanding.count }

    /// Issues a request id for a request of `type`; remembers the type.
    mutating func issue(_ type: BrokerMessageType) -> UInt32 {
        while nextID == 0 || outstanding[nextID] != nil { advance() }
        let id = nextID
        advance()
        outstanding[id] = type
        return id
    }

    private mutating func advance() {
        if nextID == UInt32.max { wrapped = true }
        nextID &+= 1
    }

    func wasIssued(_ id: UInt32) -> Bool { id != 0 && (wrapped || id < nextID) }

    func isOutstanding(_ id: UInt32) -> Bool { outstanding[id] != nil }

    /// Checks an incoming frame's type and request id against the table.
    mutating func accept(type: BrokerMessageType, requestID: UInt32) -> Verdict {
        guard !type.isRequest else { return .violation("broker sent request type \(type.rawValue)") }
        if let request = outstanding[requestID] {
            guard request.answerType == type else {
                return .violation(
                    "answer type \(type.rawValue) for request \(requestID) of type \(request.rawValue)")
            }
            outstanding[requestID] = nil
            return .deliver(request: request)
        }
        return wasIssued(requestID) ? .late : .violation("answer for request \(requestID) never sent")
    }

    /// Stops waiting for an answer (see the type's comment).
    mutating func forget(_ id: UInt32) { outstanding[id] = nil }

    /// Stops waiting for every answer (the connection they were sent on is gone). Ids keep
    /// counting up, so a new connection never reuses an id of the old one.
    mutating func forgetAll() { outstanding.removeAll() }
}
