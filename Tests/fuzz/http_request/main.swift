// libFuzzer target: what a client sends to the front's loopback health and metrics ports, parsed
// by HTTPRequestParser. Every prefix of the input is parsed too (the server parses as bytes
// arrive); an accepted request stays within the parser's own limits.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTPRequest(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    for cut in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 8)) {
        _ = HTTPRequestParser.parse(Array(bytes[..<cut]))
    }
    switch HTTPRequestParser.parse(bytes) {
    case .request(let request):
        precondition(bytes.count <= HTTPRequestParser.maxHeadBytes)
        precondition(request.path.hasPrefix("/"))
        precondition(request.path.utf8.count + (request.query?.utf8.count ?? 0) <= HTTPRequestParser.maxTargetBytes)
        precondition(request.headers.count <= HTTPRequestParser.maxHeaderCount)
    case .refused(let status, _):
        precondition([400, 405, 414, 431, 501, 505].contains(status), "unexpected status \(status)")
    case .incomplete:
        precondition(bytes.count < HTTPRequestParser.maxHeadBytes)
    }
    return 0
}
