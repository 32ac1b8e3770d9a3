#if canImport(Glibc)
    import Glibc
#endif

/// The request header field names the front tells apart, recognised by comparing the bytes
/// nghttp2 hands over with static byte strings: no String is made for a header field on the
/// call path (callgrind, docs/benchmarks.md). Names are matched exactly; nghttp2's name check
/// (`nghttp2_check_header_name`) has already refused upper-case letters.
enum HTTP2HeaderName: Equatable {
    case method, scheme, path, authority
    /// Any other pseudo-header field (`:status`, `:protocol`, unknown ones): always refused.
    case otherPseudo
    case host, contentLength, contentType, te, grpcTimeout
    /// `connection`, `keep-alive`, `proxy-connection`, `transfer-encoding`, `upgrade`.
    case connectionSpecific
    case other

    init(_ name: UnsafeBufferPointer<UInt8>) {
        self = Self.classify(name)
    }

    private static func classify(_ name: UnsafeBufferPointer<UInt8>) -> HTTP2HeaderName {
        if name.first == UInt8(ascii: ":") {
            switch name.count {
            case 5 where equal(name, ":path"): return .path
            case 7 where equal(name, ":method"): return .method
            case 7 where equal(name, ":scheme"): return .scheme
            case 10 where equal(name, ":authority"): return .authority
            default: return .otherPseudo
            }
        }
        switch name.count {
        case 2 where equal(name, "te"): return .te
        case 4 where equal(name, "host"): return .host
        case 7 where equal(name, "upgrade"): return .connectionSpecific
        case 10 where equal(name, "connection") || equal(name, "keep-alive"): return .connectionSpecific
        case 12 where equal(name, "content-type"): return .contentType
        case 12 where equal(name, "grpc-timeout"): return .grpcTimeout
        case 14 where equal(name, "content-length"): return .contentLength
        case 16 where equal(name, "proxy-connection"): return .connectionSpecific
        case 17 where equal(name, "transfer-encoding"): return .connectionSpecific
        default: return .other
        }
    }

    /// Byte-wise equality with a literal (both ASCII), one memcmp.
    static func equal(_ bytes: UnsafeBufferPointer<UInt8>, _ literal: StaticString) -> Bool {
        guard bytes.count == literal.utf8CodeUnitCount else { return false }
        guard let base = bytes.baseAddress, bytes.count > 0 else { return true }
        return memcmp(base, literal.utf8Start, bytes.count) == 0
    }

    /// Byte-wise equality with a string constant (its UTF-8 storage, without iterating the view).
    static func equal(_ bytes: UnsafeBufferPointer<UInt8>, _ text: String) -> Bool {
        text.utf8.withContiguousStorageIfAvailable { stored in
            guard stored.count == bytes.count else { return false }
            guard let base = bytes.baseAddress, let other = stored.baseAddress, bytes.count > 0 else { return true }
            return memcmp(base, other, bytes.count) == 0
        } ?? bytes.elementsEqual(text.utf8)
    }

    /// Equality with a literal, ignoring ASCII case (`te: Trailers`, `:scheme: HTTP`).
    static func equalIgnoringCase(_ bytes: UnsafeBufferPointer<UInt8>, _ lowercase: StaticString) -> Bool {
        guard bytes.count == lowercase.utf8CodeUnitCount else { return false }
        let expected = lowercase.utf8Start
        for index in 0..<bytes.count {
            var byte = bytes[index]
            if byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") { byte |= 0x20 }
            guard byte == expected[index] else { return false }
        }
        return true
    }
}
