import KMSCore

/// Test access to a decoded answer's message: the answer a frame carries, decoded as the front
/// decodes it (`BrokerAnswer.decode` for the request the pairing table names).
extension BrokerFrame {
    func answer() throws(BrokerProtocolError) -> BrokerAnswer {
        guard let request = BrokerProtocol.request(answeredBy: type) else { throw .unexpectedDirection(type.rawValue) }
        return try BrokerAnswer.decode(self, answering: request)
    }
}

extension BrokerAnswer {
    var hello: HelloAnswer? { if case .hello(let answer) = self { answer } else { nil } }
    var status: StatusAnswer? { if case .status(let answer) = self { answer } else { nil } }
    var encrypt: EncryptAnswer? { if case .encrypt(let answer) = self { answer } else { nil } }
    var decrypt: DecryptAnswer? { if case .decrypt(let answer) = self { answer } else { nil } }
    var metrics: MetricsAnswer? { if case .metrics(let answer) = self { answer } else { nil } }
    var heartbeat: HeartbeatAnswer? { if case .heartbeat(let answer) = self { answer } else { nil } }
}
