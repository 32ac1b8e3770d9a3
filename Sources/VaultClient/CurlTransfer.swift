import CCurl
import KMSRuntime

#if canImport(Glibc)
    import Glibc
#endif

/// One request on a libcurl easy handle, with everything the handle points into for it: the
/// header block (which holds the token) and the request body, both wiped by `release()` before
/// they are freed so the token and secret ID do not linger in memory, and the response body.
///
/// The easy handle itself outlives the transfer: `CurlMultiTransport` keeps finished handles
/// for the next request (`makeHandle` sets what is the same for every request once). Nothing of
/// a request stays on a handle: every option that differs between requests (URL, method, body,
/// headers, timeouts, write target) is set again by `init`, and `release()` detaches the header
/// block and the body before freeing them.
final class CurlTransfer {
    let easy: UnsafeMutableRawPointer
    let completion: (VaultResponse) -> Void
    private var headers: CurlHeaderBlock?
    /// CURL_SSLVERSION_TLSv1_2: nothing older is ever negotiated.
    static let tlsMinimumVersion = 6
    private var requestBody: UnsafeMutableRawBufferPointer?
    private let responseBody = WipedBuffer(capacity: 1024)
    private var overflowed = false
    private let startedMillis = EventLoop.nowMillis()
    private let timeoutMillis: Int
    private var released = false

    /// A new easy handle with the options every request of `options` shares: protocols, no
    /// redirects, no ambient proxy, TLS verification, minimum version, CA file, client
    /// certificate, SNI (`connectTo`), keep-alive and the write callback. nil if libcurl refuses.
    static func makeHandle(_ options: CurlMultiTransport.Options, connectTo: UnsafeMutablePointer<curl_slist>?)
        -> UnsafeMutableRawPointer?
    {
        guard let easy = curl_easy_init() else { return nil }
        var ok = true
        func set(_ option: CURLoption, _ value: Int) {
            ok = ok && kms_curl_easy_setopt_long(easy, option, value) == CURLE_OK
        }
        func set(_ option: CURLoption, _ value: String) {
            ok = ok && kms_curl_easy_setopt_str(easy, option, value) == CURLE_OK
        }
        set(CURLOPT_NOSIGNAL, 1)
        set(CURLOPT_PROTOCOLS_STR, "http,https")
        set(CURLOPT_FOLLOWLOCATION, 0)
        // Never a proxy from the environment: "" disables proxies, NOPROXY set explicitly keeps
        // libcurl from reading NO_PROXY. Only --vault-proxy names one.
        set(CURLOPT_PROXY, options.proxy ?? "")
        set(CURLOPT_NOPROXY, options.proxy == nil ? "*" : "")
        set(CURLOPT_TCP_KEEPALIVE, 1)
        set(CURLOPT_SSL_VERIFYPEER, options.skipVerify ? 0 : 1)
        set(CURLOPT_SSL_VERIFYHOST, options.skipVerify ? 0 : 2)
        set(CURLOPT_SSLVERSION, Self.tlsMinimumVersion)
        if let caFile = options.caFile { set(CURLOPT_CAINFO, caFile) }
        if let cert = options.clientCertFile, let key = options.clientKeyFile {
            set(CURLOPT_SSLCERT, cert)
            set(CURLOPT_SSLKEY, key)
        }
        if let connectTo {
            ok = ok && kms_curl_easy_setopt_ptr(easy, CURLOPT_CONNECT_TO, UnsafeRawPointer(connectTo)) == CURLE_OK
        }
        ok =
            ok
            && kms_curl_easy_setopt_write_cb(easy) { data, size, count, userp in
                guard let data, let userp else { return 0 }
                let transfer = Unmanaged<CurlTransfer>.fromOpaque(userp).takeUnretainedValue()
                return transfer.receive(UnsafeRawBufferPointer(start: data, count: size * count))
            } == CURLE_OK
        guard ok else {
            curl_easy_cleanup(easy)
            return nil
        }
        return easy
    }

    /// Prepares `request` on `easy` (a handle from `makeHandle`, new or kept). nil if libcurl
    /// refuses an option; the caller then discards the handle.
    init?(
        easy: UnsafeMutableRawPointer, request: VaultRequest, urlPrefix: String, connectTimeoutMillis: Int,
        completion: @escaping (VaultResponse) -> Void
    ) {
        self.easy = easy
        self.completion = completion
        self.timeoutMillis = max(1, request.timeoutMillis)
        guard configure(request, urlPrefix: urlPrefix, connectTimeoutMillis: connectTimeoutMillis) else {
            release()
            return nil
        }
    }

    /// Everything that differs between requests; set on every use of the handle.
    private func configure(_ request: VaultRequest, urlPrefix: String, connectTimeoutMillis: Int) -> Bool {
        var ok = true
        func set(_ option: CURLoption, _ value: Int) {
            ok = ok && kms_curl_easy_setopt_long(easy, option, value) == CURLE_OK
        }
        set(CURLOPT_TIMEOUT_MS, timeoutMillis)
        set(CURLOPT_CONNECTTIMEOUT_MS, max(1, min(connectTimeoutMillis, timeoutMillis)))
        ok = ok && kms_curl_easy_setopt_str(easy, CURLOPT_URL, urlPrefix + request.path) == CURLE_OK

        var lines = CurlHeaderBlock.Lines()
        lines.add(CurlHeaderBlock.vaultRequest)
        lines.add(CurlHeaderBlock.acceptJSON)
        // No "Expect: 100-continue" round trip for bodies over 1 KiB.
        lines.add(CurlHeaderBlock.noExpect)
        if let namespace = request.namespace, Self.isSafeHeaderValue(namespace) {
            lines.add(name: "X-Vault-Namespace: ", value: namespace)
        }
        if let correlation = request.correlationID, Self.isSafeHeaderValue(correlation) {
            lines.add(name: "X-Correlation-Id: ", value: correlation)
        }
        if let token = request.token { lines.add(name: "X-Vault-Token: ", secret: token) }

        switch request.method {
        case .get:
            // A kept handle may have posted last time: drop its body pointer, then make it a GET
            // (POSTFIELDS switches the method to POST, HTTPGET back to GET).
            ok = ok && kms_curl_easy_setopt_ptr(easy, CURLOPT_POSTFIELDS, nil) == CURLE_OK
            set(CURLOPT_POSTFIELDSIZE, -1)
            set(CURLOPT_HTTPGET, 1)
        case .post:
            lines.add(CurlHeaderBlock.contentTypeJSON)
            let copy: UnsafeMutableRawBufferPointer
            if let body = request.body, body.count > 0 {
                copy = .allocate(byteCount: body.count, alignment: 1)
                body.withUnsafeBytes { copy.copyMemory(from: $0) }
            } else {
                copy = .allocate(byteCount: 2, alignment: 1)
                copy[0] = UInt8(ascii: "{")
                copy[1] = UInt8(ascii: "}")
            }
            requestBody = copy
            set(CURLOPT_POSTFIELDSIZE, copy.count)
            ok = ok && kms_curl_easy_setopt_ptr(easy, CURLOPT_POSTFIELDS, copy.baseAddress) == CURLE_OK
            set(CURLOPT_POST, 1)
        }
        let block = CurlHeaderBlock(lines)
        headers = block
        ok = ok && kms_curl_easy_setopt_ptr(easy, CURLOPT_HTTPHEADER, UnsafeRawPointer(block.list)) == CURLE_OK
        ok =
            ok
            && kms_curl_easy_setopt_ptr(easy, CURLOPT_WRITEDATA, Unmanaged.passUnretained(self).toOpaque()) == CURLE_OK
        return ok
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

    /// Detaches from the handle and wipes and frees everything this transfer handed to libcurl;
    /// the handle itself is the transport's (kept for the next request or cleaned up). Idempotent.
    func release() {
        guard !released else { return }
        released = true
        _ = kms_curl_easy_setopt_ptr(easy, CURLOPT_HTTPHEADER, nil)
        _ = kms_curl_easy_setopt_ptr(easy, CURLOPT_WRITEDATA, nil)
        headers?.wipeAndFree()
        headers = nil
        if let body = requestBody {
            _ = kms_curl_easy_setopt_ptr(easy, CURLOPT_POSTFIELDS, nil)
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
