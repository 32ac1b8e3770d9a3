/// Big-endian writer for broker protocol payloads.
public struct ByteWriter: Sendable {
    public private(set) var bytes: [UInt8]

    public init(capacity: Int = 64) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public mutating func u8(_ value: UInt8) { bytes.append(value) }

    public mutating func u16(_ value: UInt16) {
        bytes.append(UInt8(truncatingIfNeeded: value >> 8))
        bytes.append(UInt8(truncatingIfNeeded: value))
    }

    public mutating func u32(_ value: UInt32) {
        for shift in stride(from: 24, through: 0, by: -8) {
            bytes.append(UInt8(truncatingIfNeeded: value >> UInt32(shift)))
        }
    }

    /// A length-prefixed field: u16 length, then the bytes. Callers have already checked the
    /// field against its limit; a field longer than 65535 bytes is a programming error.
    public mutating func field<C: Collection>(_ value: C) where C.Element == UInt8 {
        precondition(value.count <= Int(UInt16.max), "broker field too long")
        u16(UInt16(value.count))
        bytes.append(contentsOf: value)
    }
}

/// Big-endian reader that never traps: every read checks the remaining length and throws.
public struct ByteReader {
    private let bytes: [UInt8]
    private var offset: Int
    private let end: Int

    public init(_ bytes: [UInt8], from start: Int = 0) {
        self.bytes = bytes
        offset = start
        end = bytes.count
    }

    public var remaining: Int { end - offset }

    public mutating func u8() throws(BrokerProtocolError) -> UInt8 {
        guard remaining >= 1 else { throw .truncated }
        defer { offset += 1 }
        return bytes[offset]
    }

    public mutating func u16() throws(BrokerProtocolError) -> UInt16 {
        guard remaining >= 2 else { throw .truncated }
        defer { offset += 2 }
        return UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
    }

    public mutating func u32() throws(BrokerProtocolError) -> UInt32 {
        guard remaining >= 4 else { throw .truncated }
        var value: UInt32 = 0
        for index in offset..<offset + 4 { value = value << 8 | UInt32(bytes[index]) }
        offset += 4
        return value
    }

    /// A length-prefixed field of at most `limit` bytes.
    public mutating func field(limit: Int, name: StaticString) throws(BrokerProtocolError) -> [UInt8] {
        let length = Int(try u16())
        guard length <= limit else { throw .fieldTooLong(name) }
        guard remaining >= length else { throw .truncated }
        defer { offset += length }
        return Array(bytes[offset..<offset + length])
    }

    /// Throws when bytes are left over: every message has an exact shape.
    public func finish() throws(BrokerProtocolError) {
        guard remaining == 0 else { throw .trailingBytes(remaining) }
    }
}

extension ByteWriter {
    /// A big-endian u64 (METRICS answer values).
    public mutating func u64(_ value: UInt64) {
        u32(UInt32(truncatingIfNeeded: value >> 32))
        u32(UInt32(truncatingIfNeeded: value))
    }
}

extension ByteReader {
    /// A big-endian u64 (METRICS answer values).
    public mutating func u64() throws(BrokerProtocolError) -> UInt64 {
        let high = UInt64(try u32())
        return high << 32 | UInt64(try u32())
    }
}
