/// The protobuf wire format (protobuf.dev "Encoding") as far as the KMS v2 messages need it:
/// varints and length-delimited fields written, every wire type read and skipped.

/// Writes proto3 fields; empty values are omitted, as proto3 does. Shared by the front's KMS v2
/// responses and the probe's requests.
public struct ProtobufWriter: Sendable {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 0) { bytes.reserveCapacity(capacity) }

    public mutating func varint(_ value: UInt64) {
        var rest = value
        while rest >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest >>= 7
        }
        bytes.append(UInt8(rest))
    }

    /// A length-delimited field (bytes, string, embedded message).
    public mutating func bytes(_ number: Int, _ value: [UInt8]) {
        guard !value.isEmpty else { return }
        varint(UInt64(number) << 3 | 2)
        varint(UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    /// A string field (its UTF-8 bytes, copied without an intermediate array).
    public mutating func string(_ number: Int, _ value: String) {
        let count = value.utf8.count
        guard count > 0 else { return }
        varint(UInt64(number) << 3 | 2)
        varint(UInt64(count))
        bytes.append(contentsOf: value.utf8)
    }

    /// The encoded size of a length-delimited field of `count` bytes (0 when empty, as omitted).
    public static func fieldSize(_ number: Int, count: Int) -> Int {
        count == 0 ? 0 : varintSize(UInt64(number) << 3) + varintSize(UInt64(count)) + count
    }

    static func varintSize(_ value: UInt64) -> Int {
        var size = 1
        var rest = value
        while rest >= 0x80 {
            rest >>= 7
            size += 1
        }
        return size
    }
}

/// Why a KMS v2 request message did not decode. The front answers all of them alike; the cases
/// are for tests and the log.
public enum ProtobufDecodingError: Error, Equatable, Sendable {
    /// A field (or its length) runs past the end of the message or of its group.
    case truncated
    /// A varint longer than 10 bytes, a field key longer than 5, or a length of 2 GiB or more.
    case malformed
    /// Wire type 6 or 7, or field number 0.
    case invalidKey
    /// An end-group key with no matching start-group, or groups nested deeper than the limit.
    case badGroup
    case invalidUTF8(field: Int)
}

/// Reads the fields of one message the way SwiftProtobuf's BinaryDecoder does (1.x, with
/// unknown fields discarded), so that the hand-written KMS v2 codec accepts and refuses exactly
/// what the generated types did (Tests/FrontTests/KMSv2MessagesTests.swift compares the two):
/// - a field key is at most 5 bytes at the top level (any varint below 2^32 inside a map
///   entry or a group), with a valid wire type and a field number of 1 or more;
/// - a known field with another wire type than its own is skipped like an unknown field;
/// - groups (wire types 3 and 4) are skipped when their end key matches, nested at most 99 deep;
/// - a length must fit in what is left and be below 2^31 - 1.
public struct ProtobufScanner {
    /// SwiftProtobuf's default `messageDepthLimit` (100) less the message being decoded.
    static let groupDepthLimit = 99

    public enum WireType: UInt8, Sendable {
        case varint = 0, fixed64 = 1, lengthDelimited = 2, startGroup = 3, endGroup = 4, fixed32 = 5
    }

    public struct Key: Equatable, Sendable {
        public var number: Int
        public var wireType: WireType
    }

    private let message: UnsafeRawBufferPointer
    private var offset: Int
    private let end: Int

    public init(_ message: UnsafeRawBufferPointer) {
        self.message = message
        offset = 0
        end = message.count
    }

    private init(_ message: UnsafeRawBufferPointer, range: Range<Int>) {
        self.message = message
        offset = range.lowerBound
        end = range.upperBound
    }

    /// A scanner over an embedded message (a map entry).
    public func scanner(for range: Range<Int>) -> ProtobufScanner { ProtobufScanner(message, range: range) }

    public subscript(range: Range<Int>) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: message[range])
    }

    /// The next key of a top-level field, or nil at the end of the message.
    public mutating func topLevelKey() throws(ProtobufDecodingError) -> Key? {
        guard offset < end else { return nil }
        var raw: UInt64 = 0
        for index in 0..<5 {
            guard offset < end else { throw .malformed }
            let byte = message[offset]
            offset += 1
            if index == 4 && byte > 15 { throw .malformed }
            raw |= UInt64(byte & 0x7F) << (7 * UInt64(index))
            if byte & 0x80 == 0 { break }
        }
        guard let wireType = WireType(rawValue: UInt8(raw & 7)) else { throw .invalidKey }
        guard raw >> 3 != 0 else { throw .invalidKey }
        // An end-group key outside a group.
        guard wireType != .endGroup else { throw .badGroup }
        return Key(number: Int(raw >> 3), wireType: wireType)
    }

    /// The next key inside a map entry or a group, or nil at the end.
    public mutating func innerKey() throws(ProtobufDecodingError) -> Key? {
        guard offset < end else { return nil }
        let raw = try varint()
        guard raw < UInt64(UInt32.max), raw >> 3 != 0, let wireType = WireType(rawValue: UInt8(raw & 7)) else {
            throw .invalidKey
        }
        return Key(number: Int(raw >> 3), wireType: wireType)
    }

    public mutating func varint() throws(ProtobufDecodingError) -> UInt64 {
        guard offset < end else { throw .truncated }
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard offset < end, shift <= 63 else { throw shift == 0 ? .truncated : .malformed }
            let byte = message[offset]
            offset += 1
            value |= UInt64(byte & 0x7F) &<< shift
            if byte & 0x80 == 0 { return value }
            shift += 7
        }
    }

    /// The byte range of a length-delimited field's value (the key already read).
    public mutating func lengthDelimited() throws(ProtobufDecodingError) -> Range<Int> {
        let length = try varint()
        guard length < 0x7FFF_FFFF else { throw .malformed }
        guard length <= UInt64(end - offset) else { throw .truncated }
        let range = offset..<offset + Int(length)
        offset = range.upperBound
        return range
    }

    /// A length-delimited field's value as a string: valid UTF-8 or refused.
    public mutating func string(field: Int) throws(ProtobufDecodingError) -> String {
        let range = try lengthDelimited()
        guard let text = String(validating: self[range], as: UTF8.self) else { throw .invalidUTF8(field: field) }
        return text
    }

    /// A length-delimited field's value as bytes.
    public mutating func bytes() throws(ProtobufDecodingError) -> [UInt8] {
        Array(self[try lengthDelimited()])
    }

    /// Skips the value of a field whose key was just read.
    public mutating func skip(_ key: Key) throws(ProtobufDecodingError) {
        var depth = Self.groupDepthLimit
        try skip(key, depth: &depth)
    }

    private mutating func skip(_ key: Key, depth: inout Int) throws(ProtobufDecodingError) {
        switch key.wireType {
        case .varint: _ = try varint()
        case .fixed64: try advance(8)
        case .fixed32: try advance(4)
        case .lengthDelimited:
            // Skipping checks only that the length fits (SwiftProtobuf's skipOver does the same).
            let length = try varint()
            guard length <= UInt64(end - offset) else { throw .truncated }
            offset += Int(length)
        case .startGroup:
            depth -= 1
            guard depth >= 0 else { throw .badGroup }
            while true {
                guard let inner = try innerKey() else { throw .truncated }
                if inner.wireType == .endGroup {
                    guard inner.number == key.number else { throw .badGroup }
                    break
                }
                try skip(inner, depth: &depth)
            }
            depth += 1
        case .endGroup: throw .truncated
        }
    }

    private mutating func advance(_ count: Int) throws(ProtobufDecodingError) {
        guard end - offset >= count else { throw .truncated }
        offset += count
    }
}
