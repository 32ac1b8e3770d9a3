import COpenSSL

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
