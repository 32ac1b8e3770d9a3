import CCurl

/// `GET` of a Prometheus metrics page for `vault-kube-kms rotation status`: http(s) only, no
/// redirects, a size cap and a timeout (blocking: the command is short-lived). A kube-apiserver
/// page needs authorization: pass `--bearer-token-file` (read here, sent as a header, never
/// printed) and `--ca-file`, or save the page with `kubectl get --raw /metrics` and pass the file.
public enum MetricsPageFetch {
    /// kube-apiserver's page is a few MiB on a large cluster.
    public static let maxBytes = 64 * 1024 * 1024

    public struct Failure: Error, Equatable, Sendable, CustomStringConvertible {
        public var description: String
    }

    public static func get(url: String, bearerToken: String?, caFile: String?, timeoutMillis: Int) throws(Failure)
        -> String
    {
        guard url.hasPrefix("http://") || url.hasPrefix("https://") else {
            throw Failure(description: "\(url.prefix(64)) is not an http(s) URL")
        }
        guard let easy = curl_easy_init() else { throw Failure(description: "curl_easy_init failed") }
        defer { curl_easy_cleanup(easy) }
        let state = PageState()
        let box = Unmanaged.passRetained(state)
        defer { box.release() }
        var headers: UnsafeMutablePointer<curl_slist>?
        if let bearerToken { headers = curl_slist_append(headers, "Authorization: Bearer \(bearerToken)") }
        headers = curl_slist_append(headers, "Accept: text/plain")
        defer { curl_slist_free_all(headers) }
        var ok = true
        ok = ok && kms_curl_easy_setopt_str(easy, CURLOPT_URL, url) == CURLE_OK
        ok = ok && kms_curl_easy_setopt_str(easy, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK
        ok = ok && kms_curl_easy_setopt_long(easy, CURLOPT_NOSIGNAL, 1) == CURLE_OK
        ok = ok && kms_curl_easy_setopt_long(easy, CURLOPT_TIMEOUT_MS, timeoutMillis) == CURLE_OK
        ok = ok && kms_curl_easy_setopt_long(easy, CURLOPT_FOLLOWLOCATION, 0) == CURLE_OK
        if let caFile { ok = ok && kms_curl_easy_setopt_str(easy, CURLOPT_CAINFO, caFile) == CURLE_OK }
        ok = ok && kms_curl_easy_setopt_ptr(easy, CURLOPT_HTTPHEADER, UnsafeRawPointer(headers)) == CURLE_OK
        ok = ok && kms_curl_easy_setopt_write_cb(easy, collectPage) == CURLE_OK
        ok = ok && kms_curl_easy_setopt_ptr(easy, CURLOPT_WRITEDATA, UnsafeRawPointer(box.toOpaque())) == CURLE_OK
        guard ok else { throw Failure(description: "libcurl rejected an option") }
        let result = curl_easy_perform(easy)
        guard !state.overflowed else { throw Failure(description: "\(url.prefix(64)): page larger than 64 MiB") }
        guard result == CURLE_OK else {
            throw Failure(description: "\(url.prefix(64)): \(String(cString: curl_easy_strerror(result)))")
        }
        var status = 0
        _ = kms_curl_easy_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &status)
        guard status == 200 else { throw Failure(description: "\(url.prefix(64)): HTTP status \(status)") }
        return String(decoding: state.body, as: UTF8.self)
    }
}

final class PageState {
    var body: [UInt8] = []
    var overflowed = false
}

private func collectPage(
    _ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ context: UnsafeMutableRawPointer?
) -> Int {
    guard let data, let context else { return 0 }
    let state = Unmanaged<PageState>.fromOpaque(context).takeUnretainedValue()
    let length = size * count
    guard state.body.count + length <= MetricsPageFetch.maxBytes else {
        state.overflowed = true
        return 0
    }
    data.withMemoryRebound(to: UInt8.self, capacity: length) {
        state.body.append(contentsOf: UnsafeBufferPointer(start: $0, count: length))
    }
    return length
}
