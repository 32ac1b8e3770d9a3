// libFuzzer target: a packet from the front, decoded exactly as the broker does (DispatchTable):
// BrokerFrame.decode, then BrokerRequest.decode (KMSCore's one definition of the protocol). A
// request that decodes must re-encode to the same packet (one encoding per message), and nothing
// may trap.
import KMSCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzBrokerRequest(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let packet = Array(UnsafeBufferPointer(start: data, count: size))
    guard let frame = try? BrokerFrame.decode(packet) else { return 0 }
    precondition(frame.encoded() == packet, "frame does not re-encode to the packet")
    guard let request = try? BrokerRequest.decode(frame) else { return 0 }
    precondition(frame.type.isRequest, "an answer type decoded as a request")
    precondition(request.type == frame.type)
    precondition(request.encode(requestID: frame.requestID) == packet, "request does not re-encode")
    switch request {
    case .hello, .status, .metrics, .heartbeat: break
    case .encrypt(let request):
        precondition(!request.plaintext.isEmpty && request.plaintext.count <= Limits.maxPlaintextBytes)
        precondition(request.uid.utf8.count <= Limits.maxUIDBytes)
    case .decrypt(let request):
        precondition(!request.ciphertext.isEmpty && request.ciphertext.count <= Limits.maxCiphertextBytes)
        precondition(!request.keyID.isEmpty && request.keyID.utf8.count <= Limits.maxKeyIDBytes)
        _ = VaultCiphertextPrefix(parsing: request.ciphertext)
        _ = KeyID(parsing: request.keyID)
    }
    return 0
}
