import CNGHTTP2

/// The HTTP/2 request rules (RFC 9113 section 8) that nghttp2 applies with its HTTP messaging
/// checks on, applied here instead because the front turns those checks off for one reason:
/// nghttp2 resets (RST_STREAM PROTOCOL_ERROR) any request whose `:authority` is not a valid URI
/// authority, and grpc-go clients without `WithAuthority` send the Unix socket path (`/run/…`)
/// there. On a local Unix socket `:authority` carries no meaning, so any value is accepted; every
/// other rule is nghttp2's own, with its own character checks (`nghttp2_check_*`):
/// - pseudo-header fields: only `:method`, `:scheme`, `:path`, `:authority`, each at most once,
///   non-empty (but `:authority`), valid characters, all before the regular fields, none in
///   trailers; `:protocol` is refused (the front never enables extended CONNECT);
/// - `:method`, `:scheme`, `:path` present (CONNECT: `:authority` only), `:path` starting with
///   `/` for http(s) (`*` for OPTIONS), and `:authority` or `host` present;
/// - regular fields: valid lower-case names and valid values (as the nghttp2 1.52 of Debian 12
///   rules them, a bad one resets the stream, it is not skipped); connection-specific fields
///   refused; `te` only `trailers`; one valid `content-length`, matched by the DATA received;
/// - trailers must end the stream.
/// A violation resets the stream with PROTOCOL_ERROR, as nghttp2 does.
struct HTTP2RequestRules {
    private struct Seen: OptionSet {
        let rawValue: UInt16
        static let method = Seen(rawValue: 1 << 0)
        static let scheme = Seen(rawValue: 1 << 1)
        static let path = Seen(rawValue: 1 << 2)
        static let authority = Seen(rawValue: 1 << 3)
        static let host = Seen(rawValue: 1 << 4)
        static let regularField = Seen(rawValue: 1 << 5)
        static let connect = Seen(rawValue: 1 << 6)
        static let options = Seen(rawValue: 1 << 7)
        static let httpScheme = Seen(rawValue: 1 << 8)
        static let regularPath = Seen(rawValue: 1 << 9)
        static let asteriskPath = Seen(rawValue: 1 << 10)
    }

    private var seen: Seen = []
    private var contentLength: Int64?
    private var receivedBytes: Int64 = 0

    /// One header field of the request (`isTrailer`: of its trailers); false: the request is
    /// malformed (reset the stream with PROTOCOL_ERROR).
    mutating func field(name: UnsafeBufferPointer<UInt8>, value: UnsafeBufferPointer<UInt8>, isTrailer: Bool) -> Bool {
        field(HTTP2HeaderName(name), name: name, value: value, isTrailer: isTrailer)
    }

    /// The same, with the name already recognised (HTTP2Connection recognises it once per field).
    mutating func field(
        _ kind: HTTP2HeaderName, name: UnsafeBufferPointer<UInt8>, value: UnsafeBufferPointer<UInt8>, isTrailer: Bool
    ) -> Bool {
        guard Self.check(name, nghttp2_check_header_name), Self.valueIsValid(kind, value: value) else {
            return false
        }
        if name.first == UInt8(ascii: ":") {
            guard !isTrailer, !seen.contains(.regularField) else { return false }
            return pseudoField(kind, value: value)
        }
        seen.insert(.regularField)
        return regularField(kind, value: value)
    }

    /// The request HEADERS are complete: are the required pseudo-header fields there?
    func headersAreComplete() -> Bool {
        if seen.contains(.connect) {
            return seen.isDisjoint(with: [.scheme, .path]) && seen.contains(.authority)
        }
        guard seen.isSuperset(of: [.method, .scheme, .path]), !seen.isDisjoint(with: [.authority, .host]) else {
            return false
        }
        // For http(s), :path starts with "/" (or is "*" for OPTIONS).
        return !seen.contains(.httpScheme) || seen.contains(.regularPath)
            || (seen.contains(.options) && seen.contains(.asteriskPath))
    }

    /// DATA received on the stream; false once it exceeds the declared content-length.
    mutating func data(count: Int) -> Bool {
        receivedBytes += Int64(count)
        return contentLength.map { receivedBytes <= $0 } ?? true
    }

    /// The client ended the stream; false if the DATA did not match the declared content-length.
    func endOfStreamIsValid() -> Bool {
        contentLength.map { $0 == receivedBytes } ?? true
    }

    // MARK: the fields

    private mutating func pseudoField(_ kind: HTTP2HeaderName, value: UnsafeBufferPointer<UInt8>) -> Bool {
        let flag: Seen
        switch kind {
        case .method: flag = .method
        case .scheme: flag = .scheme
        case .path: flag = .path
        case .authority: flag = .authority
        default: return false  // unknown, :status, or :protocol (extended CONNECT is not enabled)
        }
        guard !seen.contains(flag) else { return false }
        guard flag == .authority || !value.isEmpty else { return false }
        seen.insert(flag)
        switch flag {
        case .method:
            if HTTP2HeaderName.equal(value, "CONNECT") { seen.insert(.connect) }
            if HTTP2HeaderName.equal(value, "OPTIONS") { seen.insert(.options) }
        case .scheme:
            if HTTP2HeaderName.equalIgnoringCase(value, "http") || HTTP2HeaderName.equalIgnoringCase(value, "https") {
                seen.insert(.httpScheme)
            }
        case .path:
            if value.first == UInt8(ascii: "/") {
                seen.insert(.regularPath)
            } else if HTTP2HeaderName.equal(value, "*") {
                seen.insert(.asteriskPath)
            }
        default: break
        }
        return true
    }

    private mutating func regularField(_ kind: HTTP2HeaderName, value: UnsafeBufferPointer<UInt8>) -> Bool {
        switch kind {
        case .host:
            guard !seen.contains(.host) else { return false }
            seen.insert(.host)
        case .contentLength:
            guard contentLength == nil, let length = Self.contentLength(value) else { return false }
            contentLength = length
        case .connectionSpecific:
            return false
        case .te:
            guard HTTP2HeaderName.equalIgnoringCase(value, "trailers") else { return false }
        default: break
        }
        return true
    }

    // MARK: characters (nghttp2's own checks)

    /// `:authority` and `host` take any field value (RFC 9113 section 8.2.1: no NUL, CR, LF, no
    /// leading or trailing white space); the other fields nghttp2's check for their kind.
    private static func valueIsValid(_ kind: HTTP2HeaderName, value: UnsafeBufferPointer<UInt8>) -> Bool {
        switch kind {
        case .method: return check(value, nghttp2_check_method)
        case .path: return check(value, nghttp2_check_path)
        case .scheme: return schemeIsValid(value)
        default: return check(value, nghttp2_check_header_value_rfc9113)
        }
    }

    private static func check(
        _ bytes: UnsafeBufferPointer<UInt8>, _ checker: (UnsafePointer<UInt8>?, Int) -> Int32
    ) -> Bool {
        checker(bytes.baseAddress, bytes.count) != 0
    }

    /// RFC 3986 scheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
    private static func schemeIsValid(_ value: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let first = value.first, isAlpha(first) else { return false }
        return value.dropFirst().allSatisfy { byte in
            isAlpha(byte) || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
                || byte == UInt8(ascii: "+") || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".")
        }
    }

    private static func isAlpha(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
            || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
    }

    /// 1*DIGIT that fits an Int64.
    private static func contentLength(_ value: UnsafeBufferPointer<UInt8>) -> Int64? {
        guard !value.isEmpty else { return nil }
        var length: Int64 = 0
        for byte in value {
            guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else { return nil }
            let (times, overflowTimes) = length.multipliedReportingOverflow(by: 10)
            let (sum, overflowSum) = times.addingReportingOverflow(Int64(byte - UInt8(ascii: "0")))
            guard !overflowTimes, !overflowSum else { return nil }
            length = sum
        }
        return length
    }
}
