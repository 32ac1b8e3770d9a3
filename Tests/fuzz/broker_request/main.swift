// libFuzzer target: a packet from the front, decoded exactly as the broker does (DispatchTable):
// BrokerFrame.decode, then the decoder of the frame's type. A payload that decodes must re-encode
// to the same bytes (one encoding per message), and nothing may trap.
import KMSCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzBrokerRequest(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let packet = Array(UnsafeBufferPointer(start: data, count: size))
    guard let frame = try? BrokerFrame.decode(packet) else { return 0 }
    precondition(frame.encoded() == packet, "frame does not re-encode to the packet")
    let payload = frame.payload
    switch frame.type {
    case .helloRequest:
        if let hello = try? HelloRequest.decode(payload) { precondition(hello.payload() == payload) }
    case .statusRequest, .heartbeatRequest, .metricsRequest:
        if (try? decodeEmptyRequest(payload)) != nil { precondition(payload.isEmpty) }
    case .encryptRequest:
        if let request = try? EncryptRequest.decode(payload) {
            precondition(request.payload() == payload)
            precondition(!request.plaintext.isEmpty && request.plaintext.count <= Limits.maxPlaintextBytes)
            precondition(request.uid.utf8.count <= Limits.maxUIDBytes)
        }
    case .decryptRequest:
        if let request = try? DecryptRequest.decode(payload) {
            precondition(request.payload() == payload)
            precondition(!request.ciphertext.isEmpty && request.ciphertext.count <= Limits.maxCiphertextBytes)
            precondition(!request.keyID.isEmpty && request.keyID.utf8.count <= Limits.maxKeyIDBytes)
            _ = VaultCiphertextPrefix(parsing: request.ciphertext)
            _ = KeyID(parsing: request.keyID)
        }
    default:
        precondition(!frame.type.isRequest, "an even type is missing from the harness")
    }
    return 0
}
