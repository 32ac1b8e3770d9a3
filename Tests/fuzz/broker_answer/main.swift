// libFuzzer target: a packet from the broker, decoded as the front does: BrokerFrame.decode,
// BrokerAnswer.decode for the request the pairing table says it answers (KMSCore's one
// definition of the protocol), and KMSService.response (the protobuf the front would send to the
// apiserver). A decoded answer must re-encode to the same packet.
import Front
import KMSCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzBrokerAnswer(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let packet = Array(UnsafeBufferPointer(start: data, count: size))
    guard let frame = try? BrokerFrame.decode(packet),
        let request = BrokerProtocol.request(answeredBy: frame.type)
    else { return 0 }
    // An answer is refused for every request it is not paired with.
    for other in BrokerMessageType.allCases where other != request {
        precondition((try? BrokerAnswer.decode(frame, answering: other)) == nil, "unpaired answer accepted")
    }
    guard let answer = try? BrokerAnswer.decode(frame, answering: request) else { return 0 }
    precondition(answer.type == frame.type)
    if case .metrics = answer {
        // Entries may arrive in any order and are re-encoded sorted: check the round trip instead.
        let again = try? BrokerAnswer.decode(
            BrokerFrame(type: frame.type, requestID: frame.requestID, payload: answer.payload), answering: request)
        precondition(again == answer)
    } else {
        precondition(answer.encode(requestID: frame.requestID) == packet, "answer does not re-encode")
    }
    _ = KMSService.response(to: answer)
    return 0
}
