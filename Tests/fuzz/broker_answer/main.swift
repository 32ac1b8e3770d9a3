// libFuzzer target: a packet from the broker, decoded as the front does: BrokerFrame.decode, the
// answer decoder of its type, and KMSService.response (the protobuf the front would send to the
// apiserver). A decoded answer must re-encode to the same payload.
import Front
import KMSCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzBrokerAnswer(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let packet = Array(UnsafeBufferPointer(start: data, count: size))
    guard let frame = try? BrokerFrame.decode(packet) else { return 0 }
    let payload = frame.payload
    switch frame.type {
    case .helloAnswer:
        if let answer = try? HelloAnswer.decode(payload) { precondition(answer.payload() == payload) }
    case .statusAnswer:
        if let answer = try? StatusAnswer.decode(payload) { precondition(answer.payload() == payload) }
        _ = try? KMSService.response(for: .status, answer: payload)
    case .encryptAnswer:
        if let answer = try? EncryptAnswer.decode(payload) { precondition(answer.payload() == payload) }
        _ = try? KMSService.response(for: .encrypt, answer: payload)
    case .decryptAnswer:
        if let answer = try? DecryptAnswer.decode(payload) { precondition(answer.payload() == payload) }
        _ = try? KMSService.response(for: .decrypt, answer: payload)
    case .metricsAnswer:
        // Entries may arrive in any order and are re-encoded sorted: check the round trip instead.
        if let answer = try? MetricsAnswer.decode(payload) {
            precondition((try? MetricsAnswer.decode(answer.payload())) == answer)
        }
    case .heartbeatAnswer:
        if let answer = try? HeartbeatAnswer.decode(payload) { precondition(answer.payload() == payload) }
    default:
        break
    }
    return 0
}
