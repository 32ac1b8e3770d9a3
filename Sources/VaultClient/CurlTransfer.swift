import CCurl
import KMSRuntime

#if canImport(Glibc)
    import Glibc
#endif

/// One libcurl easy handle with everything it points into: the header list (which holds the
/// token), the request body and the response body. `release()` wipes the header strings and the
/// bodies before freeing them, so the token and secret ID do not linger in curl-owned memory.
final class CurlTransfer {
    let easy: UnsafeMutableRawPointer
    let completion: (VaultResponse) -> Void
    private var headers: UnsafeMutablePointer<curl_slist>?
    private var connectToList: UnsafeMutablePointer<curl_slist>?
    /// CURL_SSLVERSION_TLSv1_2: nothing older is ever negotiated.
    static let tlsMinimumVersion = 6
    private var requestBody: UnsafeMutableRawBufferPointer?
    private let responseBody = WipedBuffer(capacity: 1024)
    private var overflowed = false
    private let startedMillis = EventLoop.nowMillis()
    private let timeoutMillis: Int
    private var released = false

    init?(request: VaultRequest, options: CurlMultiTransport.Options, completion: @escaping (VaultResponse) -> Void) {
        guard let easy = curl_easy_init() else { return nil }
        self.easy = easy
        self.completion = completion
        self.timeoutMillis = max(1, request.timeoutMillis)
        guard configure(request, options) else {
            release()
            return nil
        }
    }

    private func configure(_ request: VaultRequest, _ options: CurlMultiTransport.Options) -> Bool {
        var ok = true
        func set(_ option: CURLoption, _ value: Int) {
            ok = ok && kms_curl_easy_setopt_long(easy, option, value) == CURLE_OK
        }
        func set(_ option: CURLoption, _ value: String) {
            ok = ok && kms_curl_easy_setopt_str(easy, option, value) == CURLE_OK
        }

        set(CURLOPT_URL, options.requestBaseURL + "/v1/" + request.path)
        set(CURLOPT_NOSIGNAL, 1)
        set(CURLOPT_PROTOCOLS_STR, "http,https")
        set(CURLOPT_FOLLOWLOCATION, 0)
        // Never a proxy from the environment: "" disables proxies, NOPROXY set explicitly keeps
        // libcurl from reading NO_PROXY. Only --vault-proxy names one.
        set(CURLOPT_PROXY, options.proxy ?? "")
        set(CURLOPT_NOPROXY, options.proxy == nil ? "*" : "")
        set(CURLOPT_TIMEOUT_MS, timeoutMillis)
        set(CURLOPT_CONNECTTIMEOUT_MS, max(1, min(options.connectTimeoutMillis, timeoutMillis)))
        set(CURLOPT_TCP_KEEPALIVE, 1)
        set(CURLOPT_SSL_VERIFYPEER, options.skipVerify ? 0 : 1)
        set(CURLOPT_SSL_VERIFYHOST, options.skipVerify ? 0 : 2)
        set(CURLOPT_SSLVERSION, Self.tlsMinimumVersion)
        if let caFile = options.caFile { set(CURLOPT_CAINFO, caFile) }
        if let cert = options.clientCertFile, let key = options.clientKeyFile {
            set(CURLOPT_SSLCERT, cert)
            set(CURLOPT_SSLKEY, key)
        }
        if let connectTo = options.connectTo {
            connectToList = curl_slist_append(nil, connectTo)
            ok = ok && kms_curl_easy_setopt_ptr(easy, CURLOPT_CONNECT_TO, UnsafeRawPointer(connectToList)) == CURLE_OK
        }

        appendHeader("X-Vault-Request: true")
        appendHeader("Accept: application/json")
        // No "Expect: 100-continue" round trip for bodies over 1 KiB.
        appendHeader("Expect:")
        if let namespace = request.namespace, Self.isSafeHeaderValue(namespace) {
            appendHeader("X-Vault-Namespace: \(namespace)")
        }
        if let correlation = request.correlationID, Self.isSafeHeaderValue(correlation) {
            appendHeader("X-Correlation-Id: \(correlation)")
        }
        if let token = request.token { ok = ok && appendTokenHeader(token) }

        switch request.method {
        case .get:
            set(CURLOPT_HTTPGET, 1)
        case .post:
            appendHeader("Content-Type: application/json")
            let body = request.body ?? WipedBuffer(capacity: 2)
            if body.count == 0 { body.append("{}") }
            let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: body.count, alignment: 1)
            body.withUnsafeBytes { copy.copyMemory(from: $0) }
            requestBody = copy
            set(CURLOPT_POST, 1)
            set(CURLOPT_POSTFIELDSIZE, copy.count)
            ok = ok && kms_curl_easy_setopt_ptr(easy, CURLOPT_POSTFIELDS, copy.baseAddress) == CURLE_OK
        }
        ok = ok && kms_curl_easy_setopt_ptr(easy, CURLOPT_HTTPHEADER, UnsafeRawPointer(headers)) == CURLE_OK
        ok =
            ok
            && kms_curl_easy_setopt_write_cb(easy) { data, size, count, userp in
                guard let data, let userp else { return 0 }
                let transfer = Unmanaged<CurlTransfer>.fromOpaque(userp).takeUnretainedValue()
                return transfer.receive(UnsafeRawBufferPointer(start: data, count: size * count))
            } == CURLE_OK
        ok =
            ok
            && kms_curl_easy_setopt_ptr(easy, CURLOPT_WRITEDATA, Unmanaged.passUnretained(self).toOpaque()) == CURLE_OK
        return ok
    }

    private func appendHeader(_ line: String) {
        headers = curl_slist_append(headers, line)
    }

    /// The token header is assembled in a wiped buffer; curl_slist_append copies it and
    /// `release()` wipes that copy.
    private func appendTokenHeader(_ token: SecretBytes) -> Bool {
        let line = WipedBuffer(capacity: 16 + token.count + 1)
        line.append("X-Vault-Token: ")
        line.append(token)
        line.append(byte: 0)
        let appended = line.withUnsafeBytes { raw in
            curl_slist_append(headers, raw.baseAddress!.assumingMemoryBound(to: CChar.self))
        }
        guard let appended else { return false }
        headers = appended
        return true
    }

    private func receive(_ chunk: UnsafeRawBufferPointer) -> Int {
        guard responseBody.count + chunk.count <= VaultResponse.maxBodyBytes else {
            overflowed = true
            return 0  // aborts the transfer with CURLE_WRITE_ERROR
        }
        responseBody.append(bytes: chunk)
        return chunk.count
    }

    func response(code: CURLcode) -> VaultResponse {
        guard code == CURLE_OK else { return .failed(classify(code)) }
        var status = 0
        _ = kms_curl_easy_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &status)
        return VaultResponse(status: status, body: responseBody)
    }

    private func classify(_ code: CURLcode) -> VaultTransportError {
        switch code {
        case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY:
            return .connectFailed
        case CURLE_OPERATION_TIMEDOUT:
            // The connect timeout is shorter than the request timeout: expiring early means the
            // connection was never made, which is an availability problem, not the deadline.
            let elapsed = EventLoop.nowMillis() - startedMillis
            return elapsed + 50 < Int64(timeoutMillis) ? .connectFailed : .timedOut
        case CURLE_SEND_ERROR, CURLE_RECV_ERROR, CURLE_GOT_NOTHING, CURLE_PARTIAL_FILE:
            return .connectionReset
        case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CACERT_BADFILE, CURLE_SSL_CERTPROBLEM,
            CURLE_SSL_CIPHER, CURLE_SSL_ISSUER_ERROR, CURLE_SSL_CRL_BADFILE:
            return .tls
        case CURLE_WRITE_ERROR where overflowed:
            return .responseTooLarge
        default:
            return .other(String(cString: curl_easy_strerror(code)))
        }
    }

    /// Wipes and frees everything this transfer handed to libcurl. Idempotent.
    func release() {
        guard !released else { return }
        released = true
        curl_easy_cleanup(easy)
        var node = headers
        while let current = node {
            if let data = current.pointee.data { explicit_bzero(data, strlen(data)) }
            node = current.pointee.next
        }
        curl_slist_free_all(headers)
        headers = nil
        curl_slist_free_all(connectToList)
        connectToList = nil
        if let body = requestBody {
            explicit_bzero(body.baseAddress!, body.count)
            body.deallocate()
            requestBody = nil
        }
    }

    /// Header values come from configuration or the (untrusted) front's uid: only printable ASCII
    /// without separators that could split or fold a header line.
    static func isSafeHeaderValue(_ value: String) -> Bool {
        !value.isEmpty && value.utf8.count <= 256 && value.utf8.allSatisfy { (0x21...0x7E).contains($0) }
    }
}
