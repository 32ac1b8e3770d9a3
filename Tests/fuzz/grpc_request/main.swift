// libFuzzer target: the bytes of a gRPC request body as the front receives them. The first byte
// picks the method and how the body is split into DATA frames; the rest is the body. The body goes
// through GRPCMessageReader and KMSService.brokerCall (protobuf decode and limits). Whatever the
// front accepts must be a request the broker accepts: its packet must decode with KMSCore.
import Front
import KMSCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzGRPCRequest(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    let control = data[0]
    let body = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    let method = KMSMethod.allCases[Int(control % 3)]
    let chunk = max(1, Int(control >> 2))
    var reader = GRPCMessageReader()
    var offset = 0
    do throws(GRPCStatus) {
        while offset < body.count {
            let end = min(body.count, offset + chunk)
            try reader.append(Array(body[offset..<end]))
            offset = end
        }
        let message = try reader.finish()
        precondition(message.count <= Limits.maxGRPCMessageBytes)
        let call = try KMSService.brokerCall(for: method, message: message, deadlineMillis: 3000)
        let packet = call.request.encode(requestID: 1)
        precondition(packet.count <= Limits.maxBrokerPacketBytes, "front built an oversized packet")
        let frame = try? BrokerFrame.decode(packet)
        precondition(frame.flatMap { try? BrokerRequest.decode($0) } == call.request, "broker would refuse")
    } catch {
        return 0
    }
    return 0
}
