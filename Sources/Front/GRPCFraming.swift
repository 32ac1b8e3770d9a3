import KMSCore

/// gRPC length-prefixed messages (gRPC over HTTP/2, "Length-Prefixed-Message"):
///
///     | compressed flag (1 byte) | message length (4 bytes, big-endian) | message |
public enum GRPCFraming {
    /// The size of the prefix in front of every message.
    public static let prefixBytes = 5

    /// Frames one uncompressed message (one allocation, the message copied in one piece).
    public static func frame(_ message: [UInt8]) -> [UInt8] {
        let length = UInt32(truncatingIfNeeded: message.count)
        return [UInt8](unsafeUninitializedCapacity: prefixBytes + message.count) { buffer, count in
            buffer[0] = 0
            buffer[1] = UInt8(truncatingIfNeeded: length >> 24)
            buffer[2] = UInt8(truncatingIfNeeded: length >> 16)
            buffer[3] = UInt8(truncatingIfNeeded: length >> 8)
            buffer[4] = UInt8(truncatingIfNeeded: length)
            message.withUnsafeBufferPointer { source in
                guard let from = source.baseAddress, let to = buffer.baseAddress else { return }
                (to + prefixBytes).initialize(from: from, count: source.count)
            }
            count = prefixBytes + message.count
        }
    }
}

/// Collects the request body of a unary call: exactly one uncompressed message of at most
/// `limit` bytes. It decides as early as the bytes allow: a compressed flag or an oversized
/// declared length fails on the prefix, before the message is buffered, and a byte past the
/// first message fails at once.
public struct GRPCMessageReader: Sendable {
    public let limit: Int
    private var prefix: [UInt8] = []
    private var declaredLength: Int?
    private var message: [UInt8] = []

    public init(limit: Int = Limits.maxGRPCMessageBytes) { self.limit = limit }

    /// Whether the one message has been received completely.
    public var isComplete: Bool { declaredLength.map { message.count == $0 } ?? false }

    /// Feeds the next bytes of the DATA frames. Throws the status to answer when these bytes can
    /// never be part of a valid unary request.
    public mutating func append(_ bytes: UnsafeRawBufferPointer) throws(GRPCStatus) {
        var rest = bytes[...]
        if declaredLength == nil {
            let take = min(GRPCFraming.prefixBytes - prefix.count, rest.count)
            prefix.append(contentsOf: UnsafeRawBufferPointer(rebasing: rest.prefix(take)))
            rest = rest.dropFirst(take)
            guard prefix.count == GRPCFraming.prefixBytes else { return }
            // Nothing is reserved for the declared length: memory follows the bytes that really
            // arrived (a peer declaring the limit on many streams and sending nothing costs nothing).
            declaredLength = try Self.checkPrefix(prefix, limit: limit)
        }
        guard let length = declaredLength else { return }
        guard rest.count <= length - message.count else { throw Self.trailingBytes }
        message.append(contentsOf: UnsafeRawBufferPointer(rebasing: rest))
    }

    /// Bytes held for the message so far (its buffer's capacity), for tests.
    var bufferedCapacity: Int { message.capacity }

    /// Convenience for tests and callers holding an array.
    public mutating func append(_ bytes: [UInt8]) throws(GRPCStatus) {
        var failure: GRPCStatus?
        bytes.withUnsafeBytes { raw in
            do throws(GRPCStatus) { try append(raw) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// Called at END_STREAM: the message, or the status to answer.
    public func finish() throws(GRPCStatus) -> [UInt8] {
        guard !prefix.isEmpty else { throw GRPCStatus(.internal, "missing request message") }
        guard isComplete else { throw GRPCStatus(.internal, "truncated request message") }
        return message
    }

    static let trailingBytes = GRPCStatus(.internal, "more than one request message in a unary call")

    /// Validates the 5-byte prefix; returns the declared message length.
    static func checkPrefix(_ prefix: [UInt8], limit: Int) throws(GRPCStatus) -> Int {
        switch prefix[0] {
        case 0: break
        // We never advertise grpc-accept-encoding, so a compressed message is a client error
        // (grpc-go answers the same case with INTERNAL).
        case 1: throw GRPCStatus(.internal, "compressed messages not supported")
        default: throw GRPCStatus(.internal, "invalid message flag")
        }
        var length = 0
        for byte in prefix[1..<5] { length = length << 8 | Int(byte) }
        guard length <= limit else { throw GRPCStatus(.resourceExhausted, "request message too large") }
        return length
    }
}
