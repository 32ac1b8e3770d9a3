/// The `grpc-timeout` request header (gRPC over HTTP/2, "Requests"):
///
///     Timeout      = "grpc-timeout" TimeoutValue TimeoutUnit
///     TimeoutValue = positive integer as ASCII string of at most 8 digits
///     TimeoutUnit  = H | M | S | m | u | n   (hours, minutes, seconds, milli-, micro-, nanoseconds)
///
/// kube-apiserver (grpc-go) sends values such as `2999m` or `3S`. A malformed value is refused
/// with INVALID_ARGUMENT instead of being ignored: ignoring it would silently turn a call with a
/// deadline into one without. `0` is accepted (grpc-go accepts it too) and means "already expired".
public struct GRPCTimeout: Equatable, Sendable, CustomStringConvertible {
    /// The most digits the spec allows in TimeoutValue.
    public static let maxDigits = 8

    /// The timeout in milliseconds, rounded up so that a positive sub-millisecond timeout is
    /// still a positive number of milliseconds.
    public let milliseconds: Int64

    public init(milliseconds: Int64) { self.milliseconds = milliseconds }

    /// Parses a header value; nil when it does not follow the grammar above exactly.
    public init?(parsing value: String) {
        let bytes = value.utf8
        guard bytes.count >= 2, bytes.count <= Self.maxDigits + 1, let unit = bytes.last else { return nil }
        var amount: Int64 = 0
        for digit in bytes.dropLast() {
            guard digit >= 0x30, digit <= 0x39 else { return nil }
            amount = amount * 10 + Int64(digit - 0x30)
        }
        // At most 99_999_999 of any unit: 99_999_999 H is 3.6e14 ms, far inside Int64.
        switch unit {
        case UInt8(ascii: "H"): milliseconds = amount * 3_600_000
        case UInt8(ascii: "M"): milliseconds = amount * 60_000
        case UInt8(ascii: "S"): milliseconds = amount * 1_000
        case UInt8(ascii: "m"): milliseconds = amount
        case UInt8(ascii: "u"): milliseconds = (amount + 999) / 1_000
        case UInt8(ascii: "n"): milliseconds = (amount + 999_999) / 1_000_000
        default: return nil
        }
    }

    public var description: String { "\(milliseconds)ms" }
}
