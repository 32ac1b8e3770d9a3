import COpenSSL

/// The scheme, host and port of a validated `scheme://host[:port]` address.
struct HostPort: Equatable {
    var scheme: String
    var host: String
    var port: Int

    init?(baseURL: String) {
        var rest: Substring
        if baseURL.hasPrefix("https://") {
            scheme = "https"
            rest = baseURL.dropFirst("https://".count)
        } else if baseURL.hasPrefix("http://") {
            scheme = "http"
            rest = baseURL.dropFirst("http://".count)
        } else {
            return nil
        }
        let defaultPort = scheme == "https" ? 443 : 80
        if rest.hasPrefix("[") {
            // [v6]:port
            guard let close = rest.firstIndex(of: "]") else { return nil }
            host = String(rest[rest.index(after: rest.startIndex)..<close])
            rest = rest[rest.index(after: close)...]
            if rest.isEmpty {
                port = defaultPort
            } else {
                guard rest.hasPrefix(":"), let parsed = Int(rest.dropFirst()) else { return nil }
                port = parsed
            }
        } else if let colon = rest.lastIndex(of: ":") {
            host = String(rest[..<colon])
            guard let parsed = Int(rest[rest.index(after: colon)...]) else { return nil }
            port = parsed
        } else {
            host = String(rest)
            port = defaultPort
        }
        guard !host.isEmpty, (1...65535).contains(port) else { return nil }
    }
}

/// What the broker reports about its TLS library at start: the OpenSSL version libcurl and the
/// broker link against, and whether the FIPS provider is loaded and the default properties
/// require it.
public struct TLSLibraryInfo: Sendable {
    public let openSSLVersion: String
    public let fipsProviderAvailable: Bool
    public let fipsEnabledByDefault: Bool

    /// Reads the facts from the linked OpenSSL.
    public static func current() -> TLSLibraryInfo {
        let version = OpenSSL_version(Int32(OPENSSL_VERSION)).map { String(cString: $0) } ?? "unknown"
        return TLSLibraryInfo(
            openSSLVersion: version,
            fipsProviderAvailable: OSSL_PROVIDER_available(nil, "fips") == 1,
            fipsEnabledByDefault: EVP_default_properties_is_fips_enabled(nil) == 1)
    }
}
