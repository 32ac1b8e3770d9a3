/// Broker protocol v1, defined once (docs/PROTOCOL.md, "Messages"): the requests the front may
/// send, the answers the broker may send, and which answer is legal for which request. The front
/// (BrokerClient), the broker (DispatchTable), the fuzz harnesses and, checked by
/// `BrokerProtocolTableTests`, Tests/e2e/kmstest/brokerproto.py all use this definition; nothing else
/// decodes a payload. Modelled on OpenSSH's monitor (paired request/answer names) and OpenBSD's
/// imsg (the exact-size check made in one place: `decode` refuses any byte left over, for every
/// message).
public enum BrokerProtocol {
    /// Each request type with the one answer type the broker may send for it. An answer of any
    /// other type for an outstanding request is a protocol violation.
    public static let pairs: [(request: BrokerMessageType, answer: BrokerMessageType)] = [
        (.helloRequest, .helloAnswer),
        (.statusRequest, .statusAnswer),
        (.encryptRequest, .encryptAnswer),
        (.decryptRequest, .decryptAnswer),
        (.metricsRequest, .metricsAnswer),
        (.heartbeatRequest, .heartbeatAnswer),
    ]

    /// The request type whose answer `answer` is (nil for a request type).
    public static func request(answeredBy answer: BrokerMessageType) -> BrokerMessageType? {
        pairs.first { $0.answer == answer }?.request
    }
}

/// A request, front -> broker. STATUS, METRICS and HEARTBEAT carry no field.
public enum BrokerRequest: Equatable, Sendable {
    case hello(HelloRequest)
    case status
    case encrypt(EncryptRequest)
    case decrypt(DecryptRequest)
    case metrics
    case heartbeat

    public var type: BrokerMessageType {
        switch self {
        case .hello: .helloRequest
        case .status: .statusRequest
        case .encrypt: .encryptRequest
        case .decrypt: .decryptRequest
        case .metrics: .metricsRequest
        case .heartbeat: .heartbeatRequest
        }
    }

    /// The one answer type legal for this request (`BrokerProtocol.pairs`).
    public var answerType: BrokerMessageType {
        guard let answer = type.answerType else { preconditionFailure("request type without a pair") }
        return answer
    }

    public var payload: [UInt8] {
        switch self {
        case .hello(let hello): hello.payload()
        case .status, .metrics, .heartbeat: []
        case .encrypt(let request): request.payload()
        case .decrypt(let request): request.payload()
        }
    }

    /// The whole packet: header and payload.
    public func encode(requestID: UInt32) -> [UInt8] {
        BrokerFrame(type: type, requestID: requestID, payload: payload).encoded()
    }

    /// Decodes the payload of a frame whose header `BrokerFrame.decode` has checked. An answer
    /// type is refused (`unexpectedDirection`); so are a field beyond its limit and any trailing
    /// byte.
    public static func decode(_ frame: BrokerFrame) throws(BrokerProtocolError) -> BrokerRequest {
        var reader = ByteReader(frame.payload)
        let request: BrokerRequest
        switch frame.type {
        case .helloRequest: request = .hello(try HelloRequest(reading: &reader))
        case .statusRequest: request = .status
        case .encryptRequest: request = .encrypt(try EncryptRequest(reading: &reader))
        case .decryptRequest: request = .decrypt(try DecryptRequest(reading: &reader))
        case .metricsRequest: request = .metrics
        case .heartbeatRequest: request = .heartbeat
        case .helloAnswer, .statusAnswer, .encryptAnswer, .decryptAnswer, .metricsAnswer, .heartbeatAnswer:
            throw .unexpectedDirection(frame.type.rawValue)
        }
        try reader.finish()
        return request
    }
}

/// An answer, broker -> front. Every answer starts with its `BrokerErrorCode`; when the code is
/// not `ok` the code is the whole payload.
public enum BrokerAnswer: Equatable, Sendable {
    case hello(HelloAnswer)
    case status(StatusAnswer)
    case encrypt(EncryptAnswer)
    case decrypt(DecryptAnswer)
    case metrics(MetricsAnswer)
    case heartbeat(HeartbeatAnswer)

    public var type: BrokerMessageType {
        switch self {
        case .hello: .helloAnswer
        case .status: .statusAnswer
        case .encrypt: .encryptAnswer
        case .decrypt: .decryptAnswer
        case .metrics: .metricsAnswer
        case .heartbeat: .heartbeatAnswer
        }
    }

    public var code: BrokerErrorCode {
        switch self {
        case .hello(let answer): answer.code
        case .status(let answer): answer.code
        case .encrypt(let answer): answer.code
        case .decrypt(let answer): answer.code
        case .metrics(let answer): answer.code
        case .heartbeat(let answer): answer.code
        }
    }

    public var payload: [UInt8] {
        switch self {
        case .hello(let answer): answer.payload()
        case .status(let answer): answer.payload()
        case .encrypt(let answer): answer.payload()
        case .decrypt(let answer): answer.payload()
        case .metrics(let answer): answer.payload()
        case .heartbeat(let answer): answer.payload()
        }
    }

    /// The whole packet: header and payload.
    public func encode(requestID: UInt32) -> [UInt8] {
        BrokerFrame(type: type, requestID: requestID, payload: payload).encoded()
    }

    /// Decodes the payload of a frame whose header `BrokerFrame.decode` has checked, as the answer
    /// to a request of type `request`: a request type is refused (`unexpectedDirection`), an
    /// answer type not paired with `request` is refused (`unpairedAnswer`), and so are a field
    /// beyond its limit and any trailing byte.
    public static func decode(
        _ frame: BrokerFrame, answering request: BrokerMessageType
    ) throws(BrokerProtocolError) -> BrokerAnswer {
        guard !frame.type.isRequest else { throw .unexpectedDirection(frame.type.rawValue) }
        guard request.answerType == frame.type else {
            throw .unpairedAnswer(answer: frame.type.rawValue, request: request.rawValue)
        }
        var reader = ByteReader(frame.payload)
        let answer: BrokerAnswer
        switch frame.type {
        case .helloAnswer: answer = .hello(try HelloAnswer(reading: &reader))
        case .statusAnswer: answer = .status(try StatusAnswer(reading: &reader))
        case .encryptAnswer: answer = .encrypt(try EncryptAnswer(reading: &reader))
        case .decryptAnswer: answer = .decrypt(try DecryptAnswer(reading: &reader))
        case .metricsAnswer: answer = .metrics(try MetricsAnswer(reading: &reader))
        case .heartbeatAnswer: answer = .heartbeat(try HeartbeatAnswer(reading: &reader))
        case .helloRequest, .statusRequest, .encryptRequest, .decryptRequest, .metricsRequest, .heartbeatRequest:
            throw .unexpectedDirection(frame.type.rawValue)
        }
        try reader.finish()
        return answer
    }
}
