import CCurl

#if canImport(Glibc)
    import Glibc
#endif

/// A unary gRPC call over HTTP/2 with prior knowledge on a Unix socket, made with libcurl's easy
/// interface (blocking: the probe is a short-lived command, not an event loop).
public struct GRPCUnixClient {
    /// Largest response message the probe reads; a KMS response is a few KiB at most.
    public static let maxResponseBytes = 64 * 1024

    /// What one call returned.
    public struct Reply: Equatable, Sendable {
        /// `grpc-status` (nil when the server sent none).
        public var status: Int?
        public var message: String
        /// The response message (unframed), when the status is 0.
        public var body: [UInt8]
    }

    /// Why a call produced no gRPC answer at all.
    public struct TransportError: Error, Equatable, Sendable, CustomStringConvertible {
        public var description: String
    }

    public enum SocketAddress: Equatable, Sendable {
        case path(String)
        /// Linux abstract namespace (`unix:///@name`), given without the leading `@`.
        case abstract(String)
    }

    let address: SocketAddress
    let timeoutMillis: Int

    public init(address: SocketAddress, timeoutMillis: Int) {
        self.address = address
        self.timeoutMillis = timeoutMillis
    }

    /// Calls `/v2.KeyManagementService/<method>` with one serialized request message.
    public func call(method: String, message: [UInt8]) throws(TransportError) -> Reply {
        guard let easy = curl_easy_init() else { throw TransportError(description: "curl_easy_init failed") }
        defer { curl_easy_cleanup(easy) }
        let state = CallState()
        let box = Unmanaged.passRetained(state)
        defer { box.release() }
        var headers: UnsafeMutablePointer<curl_slist>?
        for line in ["Content-Type: application/grpc", "TE: trailers", "grpc-timeout: \(timeoutMillis)m", "Expect:"] {
            headers = curl_slist_append(headers, line)
        }
        defer { curl_slist_free_all(headers) }
        let body = GRPCFrame.encode(message)

        var ok = true
        func set(_ option: CURLoption, _ value: Int) {
            ok = ok && kms_curl_easy_setopt_long(easy, option, value) == CURLE_OK
        }
        func set(_ option: CURLoption, _ value: String) {
            ok = ok && kms_curl_easy_setopt_str(easy, option, value) == CURLE_OK
        }
        func set(_ option: CURLoption, pointer: UnsafeRawPointer?) {
            ok = ok && kms_curl_easy_setopt_ptr(easy, option, pointer) == CURLE_OK
        }
        switch address {
        case .path(let path): set(CURLOPT_UNIX_SOCKET_PATH, path)
        case .abstract(let name): set(CURLOPT_ABSTRACT_UNIX_SOCKET, name)
        }
        set(CURLOPT_URL, "http://localhost/v2.KeyManagementService/\(method)")
        set(CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE))
        set(CURLOPT_PROTOCOLS_STR, "http")
        set(CURLOPT_NOSIGNAL, 1)
        set(CURLOPT_PROXY, "")  // a Unix socket, never a proxy from the environment
        set(CURLOPT_NOPROXY, "*")
        set(CURLOPT_TIMEOUT_MS, timeoutMillis)
        set(CURLOPT_POST, 1)
        set(CURLOPT_POSTFIELDSIZE, body.count)
        // COPYPOSTFIELDS copies the bytes during the call, so the pointer need not outlive it.
        ok =
            ok
            && body.withUnsafeBytes { kms_curl_easy_setopt_ptr(easy, CURLOPT_COPYPOSTFIELDS, $0.baseAddress) }
                == CURLE_OK
        set(CURLOPT_HTTPHEADER, pointer: UnsafeRawPointer(headers))
        ok = ok && kms_curl_easy_setopt_write_cb(easy, collectBody) == CURLE_OK
        set(CURLOPT_WRITEDATA, pointer: UnsafeRawPointer(box.toOpaque()))
        // The header callback has the write callback's C signature; the shim has no typed setter
        // for it, so the function pointer is passed as the pointer it is.
        let headerCallback: @convention(c) (UnsafeMutablePointer<CChar>?, Int, Int, UnsafeMutableRawPointer?) -> Int =
            collectHeader
        set(CURLOPT_HEADERFUNCTION, pointer: unsafeBitCast(headerCallback, to: UnsafeRawPointer.self))
        set(CURLOPT_HEADERDATA, pointer: UnsafeRawPointer(box.toOpaque()))
        guard ok else {
            throw TransportError(description: "libcurl rejected an option (no HTTP/2 or Unix socket support?)")
        }

        let result = curl_easy_perform(easy)
        guard result == CURLE_OK else {
            throw TransportError(description: String(cString: curl_easy_strerror(result)))
        }
        guard !state.overflowed else { throw TransportError(description: "response larger than 64 KiB") }
        var reply = Reply(status: state.grpcStatus, message: state.grpcMessage, body: [])
        if reply.status == 0 {
            guard let message = GRPCFrame.decodeSingle(state.body) else {
                throw TransportError(description: "malformed gRPC response framing")
            }
            reply.body = message
        }
        return reply
    }
}

/// What the callbacks collect during one call.
final class CallState {
    var body: [UInt8] = []
    var overflowed = false
    var grpcStatus: Int?
    var grpcMessage = ""

    /// One header or trailer line, e.g. `grpc-status: 0\r\n`.
    func header(_ line: String) {
        guard let colon = line.firstIndex(of: ":") else { return }
        let name = line[..<colon].lowercased()
        let value = line[line.index(after: colon)...].trimmingSpaces()
        if name == "grpc-status" { grpcStatus = Int(value) }
        if name == "grpc-message" { grpcMessage = String(value.prefix(256)) }
    }
}

extension Substring {
    fileprivate func trimmingSpaces() -> Substring {
        var text = self
        // Character-wise: "\r\n" is one Character, and isWhitespace covers it.
        while let first = text.first, first.isWhitespace { text = text.dropFirst() }
        while let last = text.last, last.isWhitespace { text = text.dropLast() }
        return text
    }
}

private func collectBody(
    _ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ context: UnsafeMutableRawPointer?
)
    -> Int
{
    guard let data, let context else { return 0 }
    let state = Unmanaged<CallState>.fromOpaque(context).takeUnretainedValue()
    let length = size * count
    guard state.body.count + length <= GRPCUnixClient.maxResponseBytes + 5 else {
        state.overflowed = true
        return 0
    }
    data.withMemoryRebound(to: UInt8.self, capacity: length) {
        state.body.append(contentsOf: UnsafeBufferPointer(start: $0, count: length))
    }
    return length
}

private func collectHeader(
    _ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ context: UnsafeMutableRawPointer?
) -> Int {
    guard let data, let context else { return 0 }
    let state = Unmanaged<CallState>.fromOpaque(context).takeUnretainedValue()
    let length = size * count
    let line = data.withMemoryRebound(to: UInt8.self, capacity: length) {
        String(decoding: UnsafeBufferPointer(start: $0, count: length), as: UTF8.self)
    }
    state.header(line)
    return length
}

/// gRPC length-prefixed message framing: flag byte (0: uncompressed), u32 length, message.
public enum GRPCFrame {
    public static func encode(_ message: [UInt8]) -> [UInt8] {
        let length = UInt32(message.count)
        return [0, UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)]
            + message
    }

    /// Exactly one uncompressed message and nothing after it, or nil.
    public static func decodeSingle(_ bytes: [UInt8]) -> [UInt8]? {
        guard bytes.count >= 5, bytes[0] == 0 else { return nil }
        let length = Int(bytes[1]) << 24 | Int(bytes[2]) << 16 | Int(bytes[3]) << 8 | Int(bytes[4])
        guard bytes.count == 5 + length else { return nil }
        return Array(bytes[5...])
    }
}
