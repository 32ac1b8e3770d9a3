#if canImport(Glibc)
    import Glibc
#endif

/// The IP address the health port binds (`--health-address`): an IPv4 or IPv6 literal, default
/// 127.0.0.1. `0.0.0.0` or `::` must be asked for explicitly (a hostNetwork Pod's `httpGet`
/// probes connect to the node's address, HashiCorp's plugin binds 0.0.0.0). Host names are
/// refused: the bind must not depend on DNS.
public enum HealthBindAddress: Equatable, Sendable, CustomStringConvertible {
    case ipv4(UInt32)  // host byte order
    case ipv6([UInt8])  // 16 bytes

    public static let loopback = HealthBindAddress.ipv4(0x7F00_0001)

    public init(parsing text: String) throws(ConfigurationError) {
        var literal = text
        if literal.hasPrefix("[") && literal.hasSuffix("]") { literal = String(literal.dropFirst().dropLast()) }
        var v4 = in_addr()
        if inet_pton(AF_INET, literal, &v4) == 1 {
            self = .ipv4(UInt32(bigEndian: v4.s_addr))
            return
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, literal, &v6) == 1 {
            self = .ipv6(withUnsafeBytes(of: &v6) { Array($0) })
            return
        }
        throw ConfigurationError(
            "--health-address must be an IP address such as 127.0.0.1, 0.0.0.0 or :: (got \(text.debugDescription))")
    }

    /// True for 0.0.0.0 and ::, which expose the port on every interface.
    public var isWildcard: Bool {
        switch self {
        case .ipv4(let value): value == 0
        case .ipv6(let bytes): bytes.allSatisfy { $0 == 0 }
        }
    }

    public var description: String {
        switch self {
        case .ipv4(let value):
            return "\(value >> 24).\((value >> 16) & 0xFF).\((value >> 8) & 0xFF).\(value & 0xFF)"
        case .ipv6(let bytes):
            var address = in6_addr()
            withUnsafeMutableBytes(of: &address) { $0.copyBytes(from: bytes) }
            var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            guard inet_ntop(AF_INET6, &address, &buffer, socklen_t(buffer.count)) != nil else { return "::" }
            return "[" + String(cString: buffer) + "]"
        }
    }

    /// `address:port` as logged (`[::1]:8081` for IPv6).
    public func withPort(_ port: UInt16) -> String { "\(description):\(port)" }
}
